"""``soc alerts evidence ID``: every event behind an alert, paged, however many there are.

An alert keeps a bounded sample of its evidence ids; this asks the store again
(``detections.evidence``) so that all of them are reachable: ``--limit``/``--offset`` pages,
``--all`` everything, ``--ndjson`` streams them for a script.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import typer

from locales import _
from soc_cli.commands.alerts import alerts_app
from soc_cli.context import StoreOption, use_store
from soc_cli.labels import rule_title
from soc_cli.output import console, emit_json, err_console, safe, table

COLUMNS = ("@timestamp", "event.id", "event.dataset", "event.action", "event.outcome", "host.name", "source.ip",
           "user.name", "message")


def register(app: typer.Typer) -> None:
    """The command lives in the ``soc alerts`` group (``soc_cli.commands.alerts``); nothing to add to ``app``."""


@alerts_app.command("evidence")
def evidence(
    alert_id: str = typer.Argument(..., metavar="ID", help="alert id (or a unique prefix of it)"),
    limit: int = typer.Option(50, "--limit", help="events per page"),
    offset: int = typer.Option(0, "--offset", help="events to skip (the next page: --offset 50)"),
    everything: bool = typer.Option(False, "--all", help="every event, no paging"),
    rules: list[Path] = typer.Option(None, "--rules", help="extra rules folder the alert's rule came from"),
    as_json: bool = typer.Option(False, "--json"),
    ndjson: bool = typer.Option(False, "--ndjson"),
    store_url: str = StoreOption,
) -> None:
    """Every event behind an alert (the rule's matches in its window and group), oldest first."""
    from detections.evidence import evidence_events
    from detections.lifecycle import find_alert
    from detections.sigma.cache import load_compiled_cached

    if limit < 1 or offset < 0:
        raise ValueError("--limit must be at least 1 and --offset at least 0")
    store = use_store(store_url)
    alert = find_alert(store, alert_id)
    cs = load_compiled_cached(tuple(rules or []))[1]
    stream = evidence_events(store, cs, alert)
    if ndjson:  # streamed: a script may take millions without waiting for the count
        emit_json(stream if everything else islice(stream, offset, offset + limit), ndjson=True)
        return
    page: list[dict] = []
    total = 0
    for n, doc in enumerate(stream):
        total += 1
        if everything or offset <= n < offset + limit:
            page.append(doc)
    if as_json:
        emit_json(page)
        return
    first = offset + 1 if page else 0
    title = f"{rule_title(alert)}: " + (
        _("events {first}-{last} of {total}").format(first=first, last=offset + len(page), total=total)
        if not everything else _("all {total} events").format(total=total))
    console.print(table(page, COLUMNS, title=title, headings=False))
    if not everything and offset + len(page) < total:
        err_console.print(safe(_("showing {n} of {total}: next page with --offset {next}, or --all").format(
            n=len(page), total=total, next=offset + len(page))), highlight=False)
