"""``soc demo``: the whole chain on a generated working day, then what to type next."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from soc_cli.context import StoreOption, use_store
from soc_cli.output import cell, console

NEXT_STEPS = (
    "soc store status",
    "soc hunt 'event.dataset:system.auth AND event.outcome:failure' --since 24h",
    "soc hunt 'event.dataset:network.dns' --fields @timestamp,source.ip,dns.question.name --limit 20",
)


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
        console.print(f"store: [bold]{s.backend}[/] {s.url}")

        def show(result: StageResult) -> None:
            tbl = Table(show_header=False, box=None, padding=(0, 2))
            for key, value in result.summary.items():
                tbl.add_row(key, cell(value))
            console.print(f"[bold green]✓[/] {result.name} [dim]({result.seconds:.1f} s)[/]")
            console.print(tbl)

        run_demo(s, workdir, seed=seed, flows=flows, on_stage=show)
        status = s.status()
        tbl = Table("event.dataset", "events", title="What is in the store", header_style="bold")
        for name, n in sorted(status.per_dataset.items(), key=lambda kv: (-kv[1], kv[0])):
            tbl.add_row(name, f"{n:,}")
        console.print(tbl)
        console.print("\n[bold]Next, try:[/]")
        for line in NEXT_STEPS:
            console.print(f"  {line}")
