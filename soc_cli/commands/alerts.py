"""``soc alerts``: the analyst's queue on the command line.

Thin over ``detections.lifecycle`` (queue, transitions, bulk), ``detections.exceptions``,
``detections.timeline`` and ``detections.risk``: the triage app and the web dashboard call
the same functions, so what is allowed and what is recorded never differs between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from locales import N_, _, format_timestamp
from soc_cli.context import STATE, StoreOption, since_option, use_store
from soc_cli.errors import raised_text
from soc_cli.labels import heading, label, rule_text, rule_title
from soc_cli.output import confirm, console, emit_json, err_console, esc, progress, safe, safe_markdown

if TYPE_CHECKING:
    from detections.queue import AlertFilter

LIST_COLUMNS = ("event.id", "@timestamp", "ztsoc.alert.level", "ztsoc.alert.status", "rule.name",
                "ztsoc.alert.entity.value", "ztsoc.alert.assignee", "threat.technique.id")
LIST_FIELDS = (*LIST_COLUMNS, "rule.id", "threat.tactic.name", "ztsoc.alert.entity.type",
               "ztsoc.alert.suppressed", "ztsoc.alert.close_reason", "ztsoc.alert.evidence_count")
LEVEL_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan",
               "informational": "dim"}

alerts_app = typer.Typer(help="The alert queue: list, show, triage, bulk changes, exceptions, timelines.",
                         invoke_without_command=True, no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def make_filter(status: str | None, level: str | None, rule: str | None, entity: str | None, tactic: str | None,
                technique: str | None, assignee: str | None, query: str | None,
                include_suppressed: bool) -> AlertFilter:
    from detections.lifecycle import OPEN_STATUSES
    from detections.queue import AlertFilter, parse_levels

    statuses = _split(status) if status else list(OPEN_STATUSES)
    if statuses == ["all"]:
        statuses = [*OPEN_STATUSES, "closed"]
    return AlertFilter(statuses=statuses, levels=parse_levels(level) if level else [], rule=rule, entity=entity,
                       tactic=tactic, technique=technique, assignee=assignee, query=query,
                       include_suppressed=include_suppressed)


def _short(alert_id: Any) -> str:
    text = str(alert_id or "")
    return text if len(text) <= 16 else text[:16]


def _t(value: Any, style: str = "") -> Any:
    """A cell from stored data, shown literally (``soc_cli.safe_text``)."""
    return safe(value, style)


def _alert_table(rows: Sequence[dict[str, Any]], title: str | None = None) -> Any:
    from rich.table import Table

    tbl = Table(title=title, header_style="bold")
    for col in ("id", N_("time"), N_("level"), N_("status"), N_("rule"), N_("entity"), N_("assignee"), "ATT&CK"):
        tbl.add_column(_(col), overflow="fold")
    for a in rows:
        level = str(a.get("ztsoc.alert.level") or "")
        status = label(a.get("ztsoc.alert.status") or "open")
        if a.get("ztsoc.alert.suppressed"):
            status += " " + _("(suppressed)")
        tbl.add_row(_t(_short(a.get("event.id"))), _t(format_timestamp(a.get("@timestamp"))),
                    _t(label(level), LEVEL_STYLE.get(level, "")), _t(status), _t(rule_title(a)),
                    _t(a.get("ztsoc.alert.entity.value")), _t(a.get("ztsoc.alert.assignee")),
                    _t(a.get("threat.technique.id")))
    return tbl


@alerts_app.callback()
def alerts_list(
    ctx: typer.Context,
    status: str = typer.Option(None, "--status", help="open,acknowledged,escalated,closed or all "
                                                      "(default: everything not closed)"),
    level: str = typer.Option(None, "--level", help="e.g. high,critical or high+ (this level and above)"),
    rule: str = typer.Option(None, "--rule", help="rule id or name"),
    entity: str = typer.Option(None, "--entity", help="user, host, IP or service identity"),
    tactic: str = typer.Option(None, "--tactic", help="ATT&CK tactic id or name (TA0006)"),
    technique: str = typer.Option(None, "--technique", help="ATT&CK technique id (T1110 also matches T1110.001)"),
    assignee: str = typer.Option(None, "--assignee"),
    query: str = typer.Option(None, "--query", "-q", help="query string for anything else"),
    group_by: str = typer.Option(None, "--group-by", help="comma-separated fields, e.g. rule.name,source.ip"),
    include_suppressed: bool = typer.Option(False, "--include-suppressed", help="also list suppressed alerts"),
    since: str = typer.Option(None, "--since", help="15m, 24h, 7d or an ISO time"),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
    ndjson: bool = typer.Option(False, "--ndjson"),
    store_url: str = StoreOption,
) -> None:
    """List the queue (most severe, then newest, first); subcommands act on alerts."""
    if ctx.invoked_subcommand is not None:
        if store_url:  # `soc alerts --store URL show ID`: remembered, opened by the subcommand
            STATE.store_url = store_url
        return
    from detections.queue import group_queue, list_queue

    store = use_store(store_url)
    flt = make_filter(status, level, rule, entity, tactic, technique, assignee, query, include_suppressed)
    start = since_option(since)
    if group_by:
        groups = group_queue(store, flt, _split(group_by), since=start, limit=limit)
        fields = _split(group_by)
        if as_json or ndjson:
            emit_json(groups, ndjson=ndjson)
        else:
            console.print(emit_table(groups, [*fields, "level", "count"], _("alerts grouped by {fields}").format(fields=", ".join(fields))))
        return
    page = list_queue(store, flt, since=start, limit=limit, fields=None if (as_json or ndjson) else LIST_FIELDS)
    if as_json or ndjson:
        emit_json(page.alerts, ndjson=ndjson)
        return
    console.print(_alert_table(page.alerts, title=_("{shown} of {total} alerts").format(
        shown=len(page.alerts), total=page.total)))
    if page.total > len(page.alerts):
        more = _("{n} more: raise --limit or narrow the filters").format(n=page.total - len(page.alerts))
        err_console.print(f"[dim]{esc(more)}[/]")


def _store(_ctx: typer.Context, store_url: str | None) -> Any:
    return use_store(store_url)


# -- show ---------------------------------------------------------------------------------------

def _playbooks(alert: dict[str, Any]) -> list[dict[str, str]]:
    """The CACAO-shaped response playbooks linked to the alert's ATT&CK techniques, most specific first."""
    from playbooks.response import playbooks_for

    return [{"id": pb.id, "name": pb.name} for pb in playbooks_for(alert)]


def _guide(alert: dict[str, Any]) -> dict[str, Any]:
    """The rule's investigation guide and response steps, from the rule file when we can find it."""
    from detections.guides import fill, rule_guide

    doc = rule_guide(alert).to_doc()
    guide, response = rule_text(alert, "guide"), rule_text(alert, "response")
    if guide:  # the interface language's guide, its placeholders filled the same way
        doc["investigation"] = fill(guide, alert)
    if response:
        doc["response"] = [fill(response, alert)]
    return doc


def fetch_events(store: Any, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Events by id in the order given, in one search (one round trip to Elasticsearch, not one per id)."""
    from detections.risk import quote

    if not ids:
        return []
    found = store.search("event.id:(" + " OR ".join(quote(i) for i in ids) + ")", index="events",
                         limit=len(ids)).hits
    by_id = {str(doc.get("event.id")): doc for doc in found}
    return [by_id[i] for i in ids if i in by_id]


def alert_details(store: Any, alert: dict[str, Any], *, evidence_limit: int = 20, related_limit: int = 10
                  ) -> dict[str, Any]:
    """Everything ``show`` prints, as one JSON-able dict (also what ``--json`` emits)."""
    from detections.evidence import decisive_first, sample_ids
    from detections.lifecycle import ALERT_LEVEL
    from detections.risk import entity_risk, quote

    entity = alert.get("ztsoc.alert.entity.value")
    risk = entity_risk(store, str(entity)) if entity else None
    ids = alert.get("ztsoc.alert.evidence") or []
    ids = [ids] if isinstance(ids, str) else list(ids)
    # the first and the last events, with the fields the rule decides on, the successes first
    evidence = decisive_first(alert, fetch_events(store, sample_ids(alert, evidence_limit)))
    related: list[dict[str, Any]] = []
    if entity:
        related = store.search(
            f"ztsoc.alert.entity.value:{quote(str(entity))} AND NOT event.id:{quote(str(alert['event.id']))}",
            index="alerts", limit=related_limit,
            fields=["event.id", "@timestamp", "rule.name", ALERT_LEVEL, "ztsoc.alert.status"]).hits
    return {
        "alert": alert,
        "risk": None if risk is None else {"entity": risk.entity, "score": risk.score, "band": risk.band,
                                           "alerts": risk.alerts, "by_level": risk.by_level,
                                           "top_rules": risk.top_rules},
        "evidence": evidence,
        # every event behind it, not only the ids it stores (soc alerts evidence pages through them)
        "evidence_total": max(int(alert.get("ztsoc.alert.evidence_count") or 0), len(ids)),
        "related": related,
        "guide": _guide(alert),
        "playbooks": _playbooks(alert),
        "history": alert.get("ztsoc.alert.history") or [],
    }


def _flat(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def print_details(d: dict[str, Any]) -> None:
    console.print(details_renderable(d))


def details_renderable(d: dict[str, Any]) -> Any:
    """``show``'s output as one Rich renderable (also the triage app's detail pane)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    from detections.timeline import summarize

    parts: list[Any] = []
    a = d["alert"]
    level = str(a.get("ztsoc.alert.level") or "")
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    status = label(a.get("ztsoc.alert.status") or "open")
    if a.get("ztsoc.alert.close_reason"):
        status += f" ({label(a['ztsoc.alert.close_reason'])})"
    if a.get("ztsoc.alert.suppressed"):
        status += "  " + _("suppressed by {exception}").format(exception=a.get("ztsoc.alert.exception_id"))
    attack = []
    for key in ("threat.tactic", "threat.technique"):
        for i, ident in enumerate(_as_list(a.get(f"{key}.id"))):
            names = _as_list(a.get(f"{key}.name"))
            attack.append(f"{ident} {names[i] if i < len(names) else ''}".strip())
    rows: list[tuple[str, Any]] = [
        ("id", str(a.get("event.id"))),
        (_("rule"), f"{rule_title(a) or '?'}  ({a.get('rule.id', '?')})"),
        (_("level"), safe(label(level), LEVEL_STYLE.get(level, ""))),
        (_("status"), status),
        (_("assignee"), str(a.get("ztsoc.alert.assignee") or "-")),
        ("ATT&CK", ", ".join(attack) or "-"),
        (_("entity"), f"{a.get('ztsoc.alert.entity.type', '?')} {a.get('ztsoc.alert.entity.value', '?')}"),
        (_("seen"), format_timestamp(a.get("ztsoc.alert.first_seen") or a.get("@timestamp"), as_stored=True) + " .. "
                    + format_timestamp(a.get("ztsoc.alert.last_seen") or a.get("@timestamp"), as_stored=True)),
    ]
    if d["risk"]:
        r = d["risk"]
        risk = _("{score} ({band}) from {alerts} unresolved alert(s)").format(
            score=r["score"], band=label(r["band"]), alerts=r["alerts"])
        rows.append((_("entity risk"), risk + (f": {', '.join(r['top_rules'])}" if r["top_rules"] else "")))
    for k, v in rows:
        head.add_row(safe(k), safe(v))
    parts.append(Panel(head, title=safe(_("alert {id}").format(id=_short(a.get("event.id")))), expand=False))
    if a.get("rule.description"):
        parts.append(safe(rule_text(a, "description") or a["rule.description"], multiline=True))

    parts.append(Text.assemble("\n", (_("Evidence"), "bold"), " " + _("({shown} of {total} events)").format(
        shown=len(d["evidence"]), total=d["evidence_total"])))
    ev = Table(header_style="bold")
    for col in (N_("time"), N_("dataset"), N_("event"), N_("what the rule looks at"), N_("summary")):
        ev.add_column(_(col), overflow="fold")
    skipped = d["evidence_total"] - len(d["evidence"])
    for i, e in enumerate(d["evidence"]):
        if skipped > 0 and i == len(d["evidence"]) // 2:
            between = _("({n} more events in between: {command})").format(
                n=skipped, command=f"soc alerts evidence {_short(a.get('event.id'))}")
            ev.add_row("...", "", "", "", safe(between))
        decided = "  ".join(f"{k.rsplit('.', 1)[-1] if k.startswith('winlog.') else k}={_flat(v)}"
                            for k, v in (e.get("ztsoc.evidence.fields") or {}).items())
        ev.add_row(_t(format_timestamp(e.get("@timestamp"), ms=True)), _t(e.get("event.dataset")), _t(_short(e.get("event.id"))),
                   _t(decided), _t(summarize(e)))
    parts.append(ev)

    if d["related"]:
        parts.append(Text.assemble("\n", (_("Related alerts on the same entity"), "bold")))
        parts.append(_alert_table(d["related"]))

    guide = d["guide"]
    if guide.get("investigation"):
        parts.append(Panel(safe_markdown(guide["investigation"]), title=_("Investigation guide"), expand=False))
    if guide.get("response"):
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(_as_list(guide["response"]), 1))
        parts.append(Panel(safe_markdown(steps), title=_("Response steps"), expand=False))
    for pb in d.get("playbooks", []):
        parts.append(safe(_("Response playbook: {name}").format(name=pb["name"])
                          + f"  (soc respond {a.get('event.id')} --playbook {pb['id']})"))

    parts.append(Text.assemble("\n", (_("History"), "bold")))
    hist = Table(header_style="bold")
    for col in (N_("when"), N_("who"), N_("action"), N_("change"), N_("note")):
        hist.add_column(_(col), overflow="fold")
    for h in d["history"]:
        hist.add_row(*(_t(c) for c in history_row(h)))
    parts.append(hist if d["history"] else safe("  " + _("(no changes yet)")))
    return Group(*parts)


def history_row(h: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """One history entry as (when, who, action, "field: from -> to; ...", note), whatever the backend stored."""
    when = str(h.get("@timestamp") or h.get("at") or h.get("when") or h.get("timestamp") or "")
    who = str(h.get("actor") or h.get("who") or "")
    changes = h.get("changes") or {}
    before = h.get("from") or h.get("previous") or {}
    parts = []
    for name, value in changes.items():
        short = name.removeprefix("ztsoc.alert.")
        old = before.get(name) if isinstance(before, dict) else None
        if isinstance(value, dict) and {"from", "to"} <= set(value):
            old, value = value["from"], value["to"]
        parts.append(f"{short}: {old if old is not None else '-'} -> {value if value is not None else '-'}")
    return format_timestamp(when), who, str(h.get("action") or ""), "; ".join(parts), str(h.get("note") or "")


@alerts_app.command("show")
def show(
    ctx: typer.Context,
    alert_id: str = typer.Argument(..., metavar="ID", help="alert id (or a unique prefix of it)"),
    as_json: bool = typer.Option(False, "--json"),
    store_url: str = StoreOption,
) -> None:
    """Everything about one alert: rule, ATT&CK, entity risk, evidence, related alerts, guide, history."""
    from detections.lifecycle import find_alert

    store = _store(ctx, store_url)
    details = alert_details(store, find_alert(store, alert_id))
    if as_json:
        emit_json([details])
        return
    print_details(details)


# -- lifecycle ----------------------------------------------------------------------------------

def _preview(plan: Any) -> None:
    from rich.table import Table

    from detections.lifecycle import describe_change

    tbl = Table(header_style="bold", title=safe(f"{plan.request.action}: " + _(
        "{n} of {matched} matching alerts will change").format(n=len(plan.changes), matched=plan.matched)))
    for col in ("id", N_("level"), N_("rule"), N_("entity"), N_("change")):
        tbl.add_column(_(col), overflow="fold")
    for p in plan.changes[:20]:
        change = describe_change(p.alert, p.change)
        what = "; ".join(f"{k.removeprefix('ztsoc.alert.')}: {v['from'] or '-'} -> {v['to'] or '-'}"
                         for k, v in change.items()) or _("(note only)")
        tbl.add_row(_t(_short(p.alert.get("event.id"))), _t(label(p.alert.get("ztsoc.alert.level"))),
                    _t(rule_title(p.alert)), _t(p.alert.get("ztsoc.alert.entity.value")), _t(what))
    console.print(tbl)
    if len(plan.changes) > 20:
        more = _("... and {n} more").format(n=len(plan.changes) - 20)
        console.print(f"[dim]{esc(more)}[/]")
    for status, n in sorted(plan.refusal_counts().items()):
        reason = next(r for a, r in plan.refused if (a.get("ztsoc.alert.status") or "open") == status)
        alone = _("{n} left alone").format(n=n)
        why = _("(they are {status})").format(status=label(status))
        console.print(f"[yellow]{esc(alone)}[/] {esc(why)}: {esc(reason.split(': ', 1)[-1])}")


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str) -> Any:
    from rich.table import Table

    tbl = Table(header_style="bold", title=safe(title))
    for col in columns:
        tbl.add_column(safe(heading(col)), overflow="fold")
    for row in rows:
        tbl.add_row(*(_t(row.get(col)) for col in columns))
    return tbl


def _act(ctx: typer.Context, action: str, ids: list[str] | None, query: str | None, since: str | None,
         yes: bool, store_url: str | None, *, note: str | None = None, assignee: str | None = None,
         reason: str | None = None, as_json: bool = False) -> None:
    from detections.lifecycle import Request, analyst_name, find_alert, plan_bulk, plan_change

    store = _store(ctx, store_url)
    req = Request(action=action, actor=analyst_name(), note=note, assignee=assignee, reason=reason)
    if ids and query:
        raise ValueError(_("give alert ids or --query, not both"))
    if ids:
        done: list[dict[str, Any]] = []
        failures = 0
        for text in ids:
            alert = find_alert(store, text)
            try:
                change = plan_change(alert, req)
            except ValueError as exc:
                refused = _("refused:")
                err_console.print(f"[red]{esc(refused)}[/] {esc(raised_text(exc))}", highlight=False)
                failures += 1
                continue
            updated = store.update_alert(str(alert["event.id"]), change)
            done.append(updated)
            if not as_json:
                console.print(safe(f"{action}: {alert['event.id']} -> {label(updated.get('ztsoc.alert.status'))}"
                                   + (", " + _("assignee {name}").format(name=updated.get("ztsoc.alert.assignee"))
                                      if action == "assign" else "")),
                              highlight=False)
        if as_json:
            emit_json(done)
        if failures:
            raise typer.Exit(1)
        return
    if not query:
        raise ValueError(_("{action} needs alert ids or --query").format(action=action))
    plan = plan_bulk(store, query, req, since=since_option(since))
    if plan.matched == 0:
        console.print(safe(_("no alert matches {query}").format(query=repr(query))))
        return
    _preview(plan)
    if not plan.changes:
        raise typer.Exit(1)
    if not yes and not confirm(_("{action} {n} alert(s)?").format(action=action, n=len(plan.changes)),
                               default=False):
        err_console.print(_("nothing changed"))
        raise typer.Exit(1)
    result = _apply_with_progress(store, plan)
    console.print(safe(f"{action}: " + _("{n} alert(s) changed").format(n=result.changed) +
                       (", " + _("{n} failed").format(n=len(result.failed)) if result.failed else "")))
    for alert_id, why in result.failed[:10]:
        err_console.print(safe(f"  {alert_id}: {why}"), highlight=False)
    if result.failed:
        raise typer.Exit(1)


def _apply_with_progress(store: Any, plan: Any) -> Any:
    from detections.lifecycle import apply_bulk

    if not console.is_terminal or len(plan.changes) < 200:
        return apply_bulk(store, plan)
    with progress() as bar:
        task = bar.add_task(plan.request.action, total=len(plan.changes))
        return apply_bulk(store, plan, progress=lambda i: bar.update(task, completed=i))


IdsArg = typer.Argument(None, metavar="[ID]...", help="alert ids (or unique prefixes)")
QueryOpt = typer.Option(None, "--query", "-q", help="bulk: every alert matching this query string")
SinceOpt = typer.Option(None, "--since", help="bulk: only alerts since (15m, 24h, 7d or ISO)")
YesOpt = typer.Option(False, "--yes", "-y", help="bulk: do not ask for confirmation")
NoteOpt = typer.Option(None, "--note", "-n", help="a note for the history")
JsonOpt = typer.Option(False, "--json", help="print the changed alerts as JSON")


@alerts_app.command("ack")
def ack_cmd(ctx: typer.Context, ids: list[str] = IdsArg, query: str = QueryOpt, since: str = SinceOpt,
            note: str = NoteOpt, yes: bool = YesOpt, as_json: bool = JsonOpt, store_url: str = StoreOption) -> None:
    """Acknowledge: you are looking at it."""
    _act(ctx, "ack", ids, query, since, yes, store_url, note=note, as_json=as_json)


@alerts_app.command("assign")
def assign_cmd(ctx: typer.Context,
               args: list[str] = typer.Argument(None, metavar="[ID]...",
                                                help="alert ids (or unique prefixes); the older form USER ID... also works"),
               to: str = typer.Option(None, "--to", "-t", metavar="USER", help="the analyst who takes it"),
               query: str = QueryOpt, since: str = SinceOpt, note: str = NoteOpt, yes: bool = YesOpt,
               as_json: bool = JsonOpt, store_url: str = StoreOption) -> None:
    """Assign to an analyst: `soc alerts assign ID --to ana` (or `soc alerts assign ana ID`, `--query ...`)."""
    user, ids = _leading_value(args, to, "--to USER")
    _act(ctx, "assign", ids, query, since, yes, store_url, note=note, assignee=user, as_json=as_json)


@alerts_app.command("escalate")
def escalate_cmd(ctx: typer.Context, ids: list[str] = IdsArg, query: str = QueryOpt, since: str = SinceOpt,
                 note: str = NoteOpt, yes: bool = YesOpt, as_json: bool = JsonOpt,
                 store_url: str = StoreOption) -> None:
    """Escalate to the next tier / incident response."""
    _act(ctx, "escalate", ids, query, since, yes, store_url, note=note, as_json=as_json)


@alerts_app.command("close")
def close_cmd(ctx: typer.Context, ids: list[str] = IdsArg,
              reason: str = typer.Option(..., "--reason", "-r",
                                         help="true_positive, false_positive, benign or duplicate"),
              query: str = QueryOpt, since: str = SinceOpt, note: str = NoteOpt, yes: bool = YesOpt,
              as_json: bool = JsonOpt, store_url: str = StoreOption) -> None:
    """Close with a reason (and a note)."""
    from detections.lifecycle import CLOSE_REASONS

    if reason not in CLOSE_REASONS:
        raise ValueError(f"--reason must be one of {', '.join(CLOSE_REASONS)} (got {reason!r})")
    _act(ctx, "close", ids, query, since, yes, store_url, note=note, reason=reason, as_json=as_json)


@alerts_app.command("reopen")
def reopen_cmd(ctx: typer.Context, ids: list[str] = IdsArg, query: str = QueryOpt, since: str = SinceOpt,
               note: str = NoteOpt, yes: bool = YesOpt, as_json: bool = JsonOpt,
               store_url: str = StoreOption) -> None:
    """Put closed alerts back in the queue."""
    _act(ctx, "reopen", ids, query, since, yes, store_url, note=note, as_json=as_json)


@alerts_app.command("note")
def note_cmd(ctx: typer.Context,
             args: list[str] = typer.Argument(None, metavar="[ID]...",
                                              help="alert ids (or unique prefixes); the older form TEXT ID... also works"),
             text: str = typer.Option(None, "--note", "-n", metavar="TEXT", help="the note for the history"),
             query: str = QueryOpt, since: str = SinceOpt, yes: bool = YesOpt, as_json: bool = JsonOpt,
             store_url: str = StoreOption) -> None:
    """Add a note to the history: `soc alerts note ID --note 'called the user'` (or `soc alerts note TEXT ID`)."""
    text, ids = _leading_value(args, text, "--note TEXT")
    _act(ctx, "note", ids, query, since, yes, store_url, note=text, as_json=as_json)


def _leading_value(args: list[str] | None, option: str | None, name: str) -> tuple[str, list[str]]:
    """The value given as an option (every argument is an id), or else as the first argument.

    `assign ID --to USER` and `note ID --note TEXT` read as an analyst types them; the first
    form shipped (`assign USER ID`, `note TEXT ID`) keeps working, so scripts written for it do.
    """
    args = list(args or [])
    if option is not None:
        return option, args
    if not args:
        raise typer.BadParameter(f"give {name} (and the alert ids, or --query)")
    return args[0], args[1:]


# -- exceptions ---------------------------------------------------------------------------------

@alerts_app.command("except")
def except_cmd(
    ctx: typer.Context,
    query: str = typer.Option(..., "--query", "-q", help="alerts to suppress, e.g. 'rule.id:x AND source.ip:10.0.0.9'"),
    owner: str = typer.Option(..., "--owner", help="who answers for this exception"),
    expires: str = typer.Option("30d", "--expires", help="30d, 12h or an ISO time"),
    reason: str = typer.Option(..., "--reason"),
    since: str = typer.Option("30d", "--since", help="impact preview over past alerts since"),
    yes: bool = YesOpt,
    store_url: str = StoreOption,
) -> None:
    """Suppress future alerts matching a query (still stored, marked), after an impact preview."""
    from detections import exceptions as ex
    from detections.lifecycle import analyst_name

    store = _store(ctx, store_url)
    exc = ex.new_exception(query, owner=owner, reason=reason, expires=ex.parse_expiry(expires),
                           created_by=analyst_name())
    impact = ex.impact(store, exc.query, since_option(since))
    console.print(esc(_("Impact since {since}: {total} past alert(s) would have been suppressed ({open} still "
                        "unresolved).").format(since=since, total=impact.total, open=impact.open)))
    if impact.by_rule:
        console.print(emit_table([{"rule.name": r["rule.name"], "count": r["count"]} for r in impact.by_rule],
                                 ("rule.name", "count"), title=_("by rule")))
    console.print(safe(_("owner {owner}, expires {expires}, reason: {reason}").format(
        owner=exc.owner, expires=exc.expires, reason=exc.reason)), highlight=False)
    if not yes and not confirm(_("save this exception?"), default=False):
        err_console.print(_("nothing saved"))
        raise typer.Exit(1)
    ex.save(store, exc)
    console.print(safe(_("saved exception {id}").format(id=exc.id)), highlight=False)


@alerts_app.command("exceptions")
def exceptions_cmd(
    ctx: typer.Context,
    include_expired: bool = typer.Option(False, "--all", help="also expired exceptions"),
    delete: str = typer.Option(None, "--delete", metavar="ID", help="remove an exception now"),
    limit: int = typer.Option(1000, "--limit"),
    since: str = typer.Option(None, "--since", help="only exceptions created since"),
    as_json: bool = typer.Option(False, "--json"),
    ndjson: bool = typer.Option(False, "--ndjson"),
    store_url: str = StoreOption,
) -> None:
    """List exceptions (active ones, or --all), or remove one with --delete."""
    from detections import exceptions as ex
    from eventstore.timeutil import from_iso, utcnow

    store = _store(ctx, store_url)
    if delete:
        ex.delete(store, delete)
        console.print(safe(_("deleted exception {id}").format(id=delete)), highlight=False)
        return
    start = since_option(since)
    now = utcnow()
    rows = []
    for e in ex.list_exceptions(store, include_expired=include_expired):
        if start is not None and from_iso(e.created) < start:
            continue
        row = e.to_doc()
        row["active"] = e.active(now)
        rows.append(row)
    if as_json or ndjson:
        emit_json(rows[:limit], ndjson=ndjson)
        return
    console.print(emit_table(rows[:limit], ("id", "query", "owner", "expires", "active", "reason", "created_by"),
                             _("alert exceptions")))


# -- timeline -----------------------------------------------------------------------------------

@alerts_app.command("timeline")
def timeline_cmd(
    ctx: typer.Context,
    alert_id: str = typer.Argument(..., metavar="ID"),
    before: str = typer.Option("1h", "--before", help="how long before the alert's first event"),
    after: str = typer.Option("1h", "--after", help="how long after its last event"),
    dataset: list[str] = typer.Option(None, "--dataset", help="only these datasets (repeatable)"),
    limit: int = typer.Option(500, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
    ndjson: bool = typer.Option(False, "--ndjson"),
    store_url: str = StoreOption,
) -> None:
    """The alert's entity across flows, DNS, auth and policy decisions around the alert, in time order."""
    from detections.lifecycle import find_alert
    from detections.timeline import alert_timeline
    from eventstore.timeutil import parse_duration

    store = _store(ctx, store_url)
    alert = find_alert(store, alert_id)
    tl = alert_timeline(store, alert, before=parse_duration(before), after=parse_duration(after), limit=limit,
                        datasets=dataset or None)
    print_timeline(tl, as_json=as_json, ndjson=ndjson)


def print_timeline(tl: Any, *, as_json: bool, ndjson: bool) -> None:
    if as_json or ndjson:
        emit_json(tl.entries, ndjson=ndjson)
        return
    from rich.table import Table

    counts = _("{entries} entries, {events} events").format(entries=len(tl.entries), events=tl.total_events)
    tbl = Table(header_style="bold", title=safe(f"{tl.entity} ({'/'.join(tl.kinds)}): {counts}"))
    for col in (N_("time"), N_("dataset"), "", N_("summary")):
        tbl.add_column(_(col) if col else "", overflow="fold")
    for row in tl.rows():
        style = "bold" if row["evidence"] else ("red" if row["event.dataset"] == "alert" else "")
        tbl.add_row(_t(format_timestamp(row["@timestamp"], ms=True)), _t(row["event.dataset"]),
                    "*" if row["evidence"] else "",
                    _t(row["summary"]), style=style)
    console.print(tbl)
    if tl.datasets:
        console.print(safe(_("by dataset:") + " " + ", ".join(f"{k} {v}" for k, v in tl.datasets.items())),
                      highlight=False)
    if tl.truncated:
        newest = _("only the newest events are shown: raise --limit or narrow --before/--after")
        err_console.print(f"[dim]{esc(newest)}[/]")
