"""``soc hunt QUERY`` and ``soc events show ID``: what an analyst types in Kibana, on either store."""

from __future__ import annotations

import json

import typer

from soc_cli.context import StoreOption, since_option, use_store
from soc_cli.output import console, emit

DEFAULT_FIELDS = ("@timestamp", "event.dataset", "event.action", "source.ip", "destination.ip", "user.name", "message")


def register(app: typer.Typer) -> None:
    @app.command("hunt")
    def hunt(
        query: str = typer.Argument("*", help="Lucene query string, e.g. 'event.outcome:failure AND user.name:root'"),
        since: str = typer.Option("24h", "--since", help="15m, 24h, 7d or an ISO time"),
        until: str = typer.Option(None, "--until"),
        fields: str = typer.Option(None, "--fields", help="comma-separated ECS fields to show"),
        limit: int = typer.Option(50, "--limit"),
        oldest_first: bool = typer.Option(False, "--oldest-first"),
        alerts: bool = typer.Option(False, "--alerts", help="search the alerts instead of the events"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
        store: str = StoreOption,
    ) -> None:
        """Search events with a query string over a time range."""
        columns = [f.strip() for f in fields.split(",")] if fields else list(DEFAULT_FIELDS)
        result = use_store(store).search(
            query, since=since_option(since), until=since_option(until), index="alerts" if alerts else "events",
            descending=not oldest_first, limit=limit, fields=columns if fields else None,
        )
        emit(result.hits, columns, as_json=as_json, ndjson=ndjson,
             title=f"{len(result.hits)} of {result.total:,} matching {query!r}")

    events = typer.Typer(help="Single events.", no_args_is_help=True)
    app.add_typer(events, name="events")

    @events.command("show")
    def show(event_id: str, store: str = StoreOption) -> None:
        """The whole stored document of one event."""
        doc = use_store(store).get_event(event_id)
        if doc is None:
            raise ValueError(f"no event with event.id {event_id!r}")
        console.print_json(json.dumps(doc, default=str))
