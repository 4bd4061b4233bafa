"""``soc hunt QUERY`` and ``soc events show ID``: what an analyst types in Kibana, on either store."""

from __future__ import annotations

import json

import typer

from eventstore.store import Index
from eventstore.timeutil import to_iso
from locales import _, format_number
from soc_cli.context import StoreOption, since_option, use_store
from soc_cli.output import console, emit, emit_json, err_console, safe

DEFAULT_FIELDS = ("@timestamp", "event.dataset", "event.action", "source.ip", "destination.ip", "user.name", "message")


def register(app: typer.Typer) -> None:
    @app.command("hunt")
    def hunt(
        query: str = typer.Argument("*", help="Lucene query string, e.g. 'event.outcome:failure AND user.name:root'"),
        since: str = typer.Option("24h", "--since", help="15m, 24h, 7d, an ISO time, or 'all' (no lower bound)"),
        until: str = typer.Option(None, "--until"),
        fields: str = typer.Option(None, "--fields", help="comma-separated ECS fields to show"),
        limit: int = typer.Option(50, "--limit"),
        everything: bool = typer.Option(False, "--all", help="every match, streamed (no --limit)"),
        oldest_first: bool = typer.Option(False, "--oldest-first"),
        alerts: bool = typer.Option(False, "--alerts", help="search the alerts instead of the events"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
        store: str = StoreOption,
    ) -> None:
        """Search events with a query string over a time range; says so whenever it shows fewer than all."""
        columns = [f.strip() for f in fields.split(",")] if fields else list(DEFAULT_FIELDS)
        start = None if since.strip().lower() == "all" else since_option(since)
        end = since_option(until)
        index: Index = "alerts" if alerts else "events"
        window = _("from {start} to {end}").format(start=to_iso(start) if start else _("the start"),
                                                   end=to_iso(end) if end else _("now"))
        st = use_store(store)
        if everything:  # oldest first: the store streams in that order, whatever the size
            if ndjson:
                emit_json(st.scan(query, since=start, until=end, index=index, fields=columns if fields else None),
                          ndjson=True)
                return
            hits = list(st.scan(query, since=start, until=end, index=index, fields=columns if fields else None))
            emit(hits, columns, as_json=as_json, ndjson=False, headings=False, title=_("all {n} matching {query} {window}").format(
                n=format_number(len(hits)), query=repr(query), window=window))
            return
        result = st.search(query, since=start, until=end, index=index,
                           descending=not oldest_first, limit=limit, fields=columns if fields else None)
        shown = _("showing {n} of {total} matching {query} {window}").format(
            n=format_number(len(result.hits)), total=format_number(result.total), query=repr(query), window=window)
        emit(result.hits, columns, as_json=as_json, ndjson=ndjson, title=shown, headings=False)
        if as_json or ndjson:  # the table's title says it; a script's reader is told on stderr
            err_console.print(safe(shown + (" " + _("(--limit N or --all for more)") if len(result.hits) < result.total
                                            else "")), highlight=False)
        elif len(result.hits) < result.total:
            err_console.print(safe(_("{n} more: --limit N or --all").format(
                n=format_number(result.total - len(result.hits)))), highlight=False)

    events = typer.Typer(help="Single events.", no_args_is_help=True)
    app.add_typer(events, name="events")

    @events.command("show")
    def show(event_id: str = typer.Argument(..., metavar="ID", help="event id (or a unique prefix of it)"),
             store: str = StoreOption) -> None:
        """The whole stored document of one event."""
        from eventstore.ids import find_event

        doc = find_event(use_store(store), event_id)
        console.print_json(json.dumps(doc, default=str))
