"""``soc pivot ENTITY``: everything one user, host, address or service identity did, in time order.

The entity's kind is guessed from its shape (an IP, ``spiffe://...``, ``DOMAIN\\user`` or
``user@realm``; a bare name is searched as both user and host) or given with ``--kind``;
``detections.timeline`` knows which ECS fields hold each kind in each dataset.
"""

from __future__ import annotations

import typer

from locales import _
from soc_cli.context import StoreOption, since_option, use_store
from soc_cli.labels import label
from soc_cli.output import console, esc, safe


def register(app: typer.Typer) -> None:
    app.command("pivot")(pivot)


def pivot(
    entity: str = typer.Argument(..., metavar="ENTITY", help="IP, user, host or spiffe:// identity"),
    kind: str = typer.Option(None, "--kind", help="ip, user, host or service (default: guessed)"),
    since: str = typer.Option("24h", "--since", help="15m, 24h, 7d or an ISO time"),
    until: str = typer.Option(None, "--until"),
    dataset: list[str] = typer.Option(None, "--dataset", help="only these datasets (repeatable)"),
    limit: int = typer.Option(500, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
    ndjson: bool = typer.Option(False, "--ndjson"),
    store_url: str = StoreOption,
) -> None:
    """The entity's events across flows, DNS, auth and policy decisions, its alerts and its risk."""
    from detections.risk import entity_risk
    from detections.timeline import entity_timeline, kind_named
    from soc_cli.commands.alerts import print_timeline

    store = use_store(store_url)
    kinds = [kind_named(kind)] if kind else None
    tl = entity_timeline(store, entity, kinds=kinds, since=since_option(since), until=since_option(until),
                         limit=limit, datasets=dataset or None)
    if as_json or ndjson:
        print_timeline(tl, as_json=as_json, ndjson=ndjson)
        return
    risk = entity_risk(store, entity)
    searched = _("searched as {kinds} since {since}: risk {score} ({band}) from {alerts} unresolved alert(s)").format(
        kinds=" / ".join(tl.kinds), since=since, score=risk.score, band=label(risk.band), alerts=risk.alerts)
    console.print(f"[bold]{esc(entity)}[/] {esc(searched)}", highlight=False)
    if not tl.entries:
        console.print(safe(_("nothing found (query: {query})").format(query=tl.query)), highlight=False)
        raise typer.Exit(0)
    print_timeline(tl, as_json=False, ndjson=False)
