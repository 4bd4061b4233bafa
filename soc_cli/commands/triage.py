"""``soc triage``: the interactive alert queue (the app itself is ``soc_cli.triage_app``)."""

from __future__ import annotations

import typer

from soc_cli.context import StoreOption, use_store


def register(app: typer.Typer) -> None:
    app.command("triage")(triage)


def triage(
    status: str = typer.Option(None, "--status", help="open,acknowledged,escalated,closed or all"),
    level: str = typer.Option(None, "--level", help="e.g. high+ or medium,high"),
    assignee: str = typer.Option(None, "--assignee"),
    query: str = typer.Option(None, "--query", "-q"),
    limit: int = typer.Option(500, "--limit"),
    store_url: str = StoreOption,
) -> None:
    """Work the queue interactively: a ack, s assign, e escalate, c close, n note, o reopen, t timeline, / filter, q quit."""
    from soc_cli.commands.alerts import make_filter
    from soc_cli.triage_app import TriageApp

    store = use_store(store_url)
    flt = make_filter(status, level, None, None, None, None, assignee, query, False)
    TriageApp(store, flt=flt, limit=limit).run()
