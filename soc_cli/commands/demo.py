"""``soc demo``: the whole chain on a generated working day, then what to type next."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from soc_cli.context import StoreOption, use_store
from soc_cli.output import console, esc, safe

LEVEL_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}


def next_steps(top: dict[str, object] | None) -> list[str]:
    """What an analyst types next, with the real ids of the top alert."""
    steps = ["soc alerts --status open"]
    if top:
        alert_id, entity = top["event.id"], top.get("ztsoc.alert.entity.value")
        steps += [f"soc alerts show {alert_id}", f"soc alerts timeline {alert_id}"]
        if entity:
            steps.append(f"soc pivot '{entity}' --since 24h")
        steps += [f"soc respond {alert_id}",
                  f"soc alerts close {alert_id} --reason true_positive --note 'contained'"]
    steps += ["soc triage", "soc hunt 'event.dataset:system.auth AND event.outcome:failure' --since 24h",
              "soc dashboard serve", "soc playbook list"]
    return steps


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        store: str = StoreOption,
        workdir: Path = typer.Option(None, "--dir", help="where the generated capture and logs go"),
        seed: int = typer.Option(7, "--seed"),
        flows: int = typer.Option(2500, "--flows", help="TLS/HTTP sessions in the day"),
    ) -> None:
        """Generate a working day of the provincial network and run it through ztsoc."""
        from platformdirs import user_cache_dir

        from playbooks.demo import StageResult, run_demo

        s = use_store(store)
        workdir = workdir or Path(user_cache_dir("ztsoc")) / "demo"
        console.print(f"store: [bold]{esc(s.backend)}[/] {esc(s.url)}")

        def show(result: StageResult) -> None:
            tbl = Table(show_header=False, box=None, padding=(0, 2))
            for key, value in result.summary.items():
                tbl.add_row(safe(key), safe(value))
            console.print(f"[bold green]✓[/] {esc(result.name)} [dim]({result.seconds:.1f} s)[/]")
            console.print(tbl)

        run_demo(s, workdir, seed=seed, flows=flows, on_stage=show)
        status = s.status()
        tbl = Table("event.dataset", "events", title="What is in the store", header_style="bold")
        for name, n in sorted(status.per_dataset.items(), key=lambda kv: (-kv[1], kv[0])):
            tbl.add_row(safe(name), f"{n:,}")
        console.print(tbl)
        fields = ["event.id", "ztsoc.alert.level", "rule.name", "ztsoc.alert.entity.value", "@timestamp"]
        # newest first, then (stable sort) by level: the analysts' order
        alerts = s.search("ztsoc.alert.status:open", index="alerts", limit=50, fields=fields).hits
        alerts.sort(key=lambda a: LEVEL_RANK.get(str(a.get("ztsoc.alert.level")), 5))
        queue = Table("id", "level", "rule", "entity", title="The alert queue (open)", header_style="bold")
        for a in alerts:
            queue.add_row(*(safe(a.get(f)) for f in fields[:4]))
        console.print(queue)
        console.print("\n[bold]Next, an analyst would type:[/]")
        for line in next_steps(alerts[0] if alerts else None):
            console.print(f"  {line}", highlight=False, markup=False)
