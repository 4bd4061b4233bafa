"""``soc demo``: the whole chain on a generated working day, then what to type next."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from locales import _, format_number
from soc_cli.context import StoreOption, use_store
from soc_cli.labels import label, rule_title
from soc_cli.output import console, esc, safe

LEVEL_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}


def next_steps(top: dict[str, object] | None) -> list[tuple[str, str]]:
    """What an analyst types next, with the real ids of the top alert, and why (translated).

    The commands are identifiers and stay as typed; only the explanation is translated.
    """
    steps = [("soc alerts --status open", _("the open alerts, most serious first"))]
    if top:
        alert_id, entity = top["event.id"], top.get("ztsoc.alert.entity.value")
        steps += [(f"soc alerts show {alert_id}", _("the top alert: rule, ATT&CK, entity, evidence")),
                  (f"soc alerts timeline {alert_id}", _("its events in time order"))]
        if entity:
            steps.append((f"soc pivot '{entity}' --since 24h", _("everything this entity did in the last day")))
        steps += [(f"soc respond {alert_id}", _("the response playbook, step by step")),
                  (f"soc alerts close {alert_id} --reason true_positive --note 'contained'",
                   _("close it with a reason once contained"))]
    steps += [("soc triage", _("the triage screen (keyboard only)")),
              ("soc hunt 'event.dataset:system.auth AND event.outcome:failure' --since 24h",
               _("hunt: failed logins of the last day")),
              ("soc dashboard serve", _("the dashboard in a browser")),
              ("soc playbook list", _("the training exercises"))]
    return steps


def register(app: typer.Typer) -> None:
    @app.command("demo", help=_("Generate a working day of the provincial network and run it through ztsoc."))
    def demo(
        store: str = StoreOption,
        workdir: Path = typer.Option(None, "--dir", help=_("where the generated capture and logs go")),
        seed: int = typer.Option(7, "--seed", help=_("seed of the generated day (same seed, same day)")),
        flows: int = typer.Option(2500, "--flows", help=_("TLS/HTTP sessions in the day")),
    ) -> None:
        """Generate a working day of the provincial network and run it through ztsoc."""
        from platformdirs import user_cache_dir

        from playbooks.demo import StageResult, run_demo

        s = use_store(store)
        workdir = workdir or Path(user_cache_dir("ztsoc")) / "demo"
        store_label = _("store:")
        console.print(f"{esc(store_label)} [bold]{esc(s.backend)}[/] {esc(s.url)}")

        def show(result: StageResult) -> None:
            tbl = Table(show_header=False, box=None, padding=(0, 2))
            for key, value in result.summary.items():
                shown = format_number(value) if isinstance(value, int) else value
                tbl.add_row(safe(key), safe(shown))
            seconds = format_number(round(result.seconds, 1))
            stage = _(result.name)  # the stage names are marked with N_ where the stages are defined
            console.print(f"[bold green]✓[/] {esc(stage)} [dim]({esc(seconds)} s)[/]")
            console.print(tbl)

        run_demo(s, workdir, seed=seed, flows=flows, on_stage=show)
        status = s.status()
        tbl = Table("event.dataset", _("events"), title=_("What is in the store"), header_style="bold")
        for name, n in sorted(status.per_dataset.items(), key=lambda kv: (-kv[1], kv[0])):
            tbl.add_row(safe(name), format_number(n))
        console.print(tbl)
        fields = ["event.id", "ztsoc.alert.level", "rule.name", "ztsoc.alert.entity.value", "@timestamp", "rule.id"]
        # newest first, then (stable sort) by level: the analysts' order
        alerts = s.search("ztsoc.alert.status:open", index="alerts", limit=50, fields=fields).hits
        alerts.sort(key=lambda a: LEVEL_RANK.get(str(a.get("ztsoc.alert.level")), 5))
        queue = Table("id", _("level"), _("rule"), _("entity"), title=_("The alert queue (open)"),
                      header_style="bold")
        for a in alerts:
            queue.add_row(safe(a.get(fields[0])), safe(label(a.get(fields[1]))), safe(rule_title(a)), safe(a.get(fields[3])))
        console.print(queue)
        next_label = _("Next, an analyst would type:")
        console.print(f"\n[bold]{esc(next_label)}[/]")
        for cmd, why in next_steps(alerts[0] if alerts else None):  # why as a shell comment: still pasteable
            console.print(safe(f"  # {why}", "dim"), highlight=False)
            console.print(safe(f"  {cmd}"), highlight=False)
