"""What an entity did around an alert: its events across every dataset, in time order.

An analyst's first question about an alert is "what else did this user / host / address /
service do around then?". The answer lives in different fields per dataset (a flow names
``source.ip``/``destination.ip``, an sshd line ``user.name`` and ``source.ip``, a policy
decision the caller's identity, a Windows logon ``user.target.name``...), so each entity
kind lists the ECS fields that can hold it (``KINDS``, a registry) and one query ORs them.
Each dataset has a one-line summariser (``SUMMARIES``) so a mixed timeline reads as a story.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from detections.risk import quote
from eventstore.schema import field_type
from eventstore.store import Doc, Store
from eventstore.timeutil import from_iso


@dataclass(frozen=True, slots=True)
class EntityKind:
    name: str
    fields: tuple[str, ...]
    help: str


KINDS: dict[str, EntityKind] = {
    "ip": EntityKind("ip", (
        "source.ip", "destination.ip", "related.ip", "host.ip", "client.ip", "server.ip", "dns.resolved_ip",
    ), "an IPv4 or IPv6 address"),
    "user": EntityKind("user", (
        "user.name", "related.user", "source.user.name", "destination.user.name", "client.user.name",
        "server.user.name", "user.target.name", "user.effective.name",
    ), "a user account"),
    "host": EntityKind("host", (
        "host.name", "host.hostname", "related.hosts", "observer.hostname", "log.syslog.hostname",
        "winlog.computer_name", "source.domain", "destination.domain",
    ), "a host name"),
    "service": EntityKind("service", (
        "service.name", "source.user.name", "destination.user.name", "client.user.name", "user.name",
        "related.user", "url.domain", "destination.domain",
    ), "a service identity (spiffe://...) or service name"),
}

#: Alert ``ztsoc.alert.entity.type`` values that name a kind differently.
KIND_ALIASES: dict[str, str] = {
    "source.ip": "ip", "destination.ip": "ip", "address": "ip", "ip": "ip",
    "user.name": "user", "account": "user", "user": "user",
    "host.name": "host", "hostname": "host", "host": "host",
    "service.name": "service", "spiffe": "service", "identity": "service", "principal": "service", "service": "service",
}


def kind_named(name: str) -> EntityKind:
    key = KIND_ALIASES.get(name.lower(), name.lower())
    kind = KINDS.get(key)
    if kind is None:
        raise ValueError(f"unknown entity kind {name!r}: expected one of {', '.join(KINDS)}")
    return kind


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def guess_kinds(value: str) -> list[EntityKind]:
    """The kinds ``value`` can be: exactly one when its shape says so, else user and host both."""
    text = value.strip()
    if _is_ip(text):
        return [KINDS["ip"]]
    if text.startswith("spiffe://"):
        return [KINDS["service"]]
    if "\\" in text or "@" in text:
        return [KINDS["user"]]
    if "." in text and not text.replace(".", "").isdigit():
        return [KINDS["host"], KINDS["user"]]
    return [KINDS["user"], KINDS["host"]]


def entity_query(value: str, kinds: Sequence[EntityKind]) -> str:
    """One query string ORing every field the kinds can hold the value in."""
    is_ip = _is_ip(value)
    names: list[str] = []
    for kind in kinds:
        for f in kind.fields:
            ftype = field_type(f)
            # an address field cannot hold a name: asking would be a query error, not "no match"
            if f not in names and ftype is not None and (ftype != "ip" or is_ip):
                names.append(f)
    if not names:
        raise ValueError(f"{value!r} cannot be searched as {'/'.join(k.name for k in kinds)}")
    term = quote(value)
    return "(" + " OR ".join(f"{name}:{term}" for name in names) + ")"


# -- one-line summaries per dataset -------------------------------------------------------------

def _endpoint(doc: Doc, side: str) -> str:
    ip = doc.get(f"{side}.ip") or doc.get(f"{side}.address") or "?"
    port = doc.get(f"{side}.port")
    return f"{ip}:{port}" if port is not None else str(ip)


def _flow(doc: Doc) -> str:
    proto = doc.get("network.protocol") or doc.get("network.transport") or ""
    size = doc.get("network.bytes")
    tail = f" {size} B" if size is not None else ""
    return f"{_endpoint(doc, 'source')} -> {_endpoint(doc, 'destination')} {proto}{tail}".strip()


def _dns(doc: Doc) -> str:
    name = doc.get("dns.question.name", "?")
    qtype = doc.get("dns.question.type", "")
    rcode = doc.get("dns.response_code")
    answers = doc.get("dns.resolved_ip")
    answer = (", ".join(answers[:3]) if isinstance(answers, list) else str(answers)) if answers else ""
    return (f"{doc.get('source.ip', '?')} asks {name} {qtype}" + (f" -> {rcode}" if rcode else "")
            + (f" [{answer}]" if answer else ""))


def _http(doc: Doc) -> str:
    method = doc.get("http.request.method") or "?"
    host = doc.get("url.domain") or doc.get("destination.domain") or doc.get("destination.ip") or "?"
    target = doc.get("url.original") or doc.get("url.path") or ""
    status = doc.get("http.response.status_code")
    agent = doc.get("user_agent.original")
    text = f"{doc.get('source.ip', '?')} {method} {host}{target if str(target).startswith('/') else ' ' + str(target)}"
    return text + (f" -> {status}" if status is not None else "") + (f" ({agent})" if agent else "")


def _tls(doc: Doc) -> str:
    sni = doc.get("tls.client.server_name") or doc.get("destination.domain") or "(no SNI)"
    version = doc.get("tls.version") or ""
    ja = doc.get("tls.client.ja3") or ""
    return (f"{_endpoint(doc, 'source')} -> {_endpoint(doc, 'destination')} TLS {version} {sni}".replace("  ", " ")
            + (f" ja3={ja}" if ja else ""))


def _auth(doc: Doc) -> str:
    who = doc.get("user.name") or doc.get("user.target.name") or "?"
    frm = doc.get("source.ip")
    host = doc.get("host.name")
    parts = [str(doc.get("event.action") or "auth"), str(doc.get("event.outcome") or ""), f"user={who}"]
    if frm:
        parts.append(f"from={frm}")
    if host:
        parts.append(f"on={host}")
    return " ".join(p for p in parts if p)


def _decision(doc: Doc) -> str:
    who = doc.get("source.user.name") or doc.get("user.name") or doc.get("source.ip") or "?"
    what = doc.get("service.name") or doc.get("destination.user.name") or doc.get("destination.domain") or "?"
    path = doc.get("url.path") or ""
    method = doc.get("http.request.method") or ""
    rule = doc.get("ztsoc.policy.rule")
    verdict = doc.get("event.action") or doc.get("event.type") or "decision"
    text = f"{verdict} {who} -> {what} {method} {path}".replace("  ", " ").strip()
    return text + (f" (rule {rule})" if rule else "")


def _alert(doc: Doc) -> str:
    return f"ALERT [{doc.get('ztsoc.alert.level', '?')}] {doc.get('rule.name', '?')}"


def _default(doc: Doc) -> str:
    return str(doc.get("message") or doc.get("event.action") or doc.get("event.dataset") or "")


SUMMARIES: dict[str, Callable[[Doc], str]] = {
    "network.flow": _flow,
    "network.dns": _dns,
    "network.http": _http,
    "network.tls": _tls,
    "system.auth": _auth,
    "windows.security": _auth,
    "policy.decision": _decision,
    "alert": _alert,
}


def summarize(doc: Doc) -> str:
    if doc.get("event.kind") == "alert":
        return _alert(doc)
    text = SUMMARIES.get(str(doc.get("event.dataset")), _default)(doc)
    link = doc.get("ztsoc.timeline.link")
    return f"[via {link}] {text}" if link else text


# -- linked entities ----------------------------------------------------------------------------

#: Successful logons: an address that logged in as an account links the account to it.
_LOGON = "event.category:authentication AND event.outcome:success"


def linked_accounts(store: Store, ip: str, since: datetime | None, until: datetime | None,
                    limit: int = 20) -> list[tuple[str, str]]:
    """(account, first success time) of every account ``ip`` logged in as, in the window."""
    hits = store.search(f"{_LOGON} AND source.ip:{quote(ip)}", since=since, until=until, limit=500,
                        sort="@timestamp", descending=False, fields=["@timestamp", "user.name", "user.target.name"])
    first: dict[str, str] = {}
    for h in hits.hits:
        user = h.get("user.name") or h.get("user.target.name")
        if isinstance(user, list):
            user = user[0] if user else None
        if user and str(user) not in first:
            first[str(user)] = str(h.get("@timestamp"))
    return list(first.items())[:limit]


# -- the timeline -------------------------------------------------------------------------------

@dataclass(slots=True)
class Timeline:
    entity: str
    kinds: list[str]
    query: str
    since: datetime | None
    until: datetime | None
    total_events: int
    entries: list[Doc] = field(default_factory=list)
    datasets: dict[str, int] = field(default_factory=dict)
    truncated: bool = False

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"@timestamp": e.get("@timestamp"),
             "event.dataset": "alert" if e.get("event.kind") == "alert" else e.get("event.dataset") or "",
             "event.id": e.get("event.id"), "evidence": bool(e.get("ztsoc.timeline.evidence")),
             "link": e.get("ztsoc.timeline.link"), "summary": summarize(e)}
            for e in self.entries
        ]


def entity_timeline(store: Store, entity: str, *, kinds: Sequence[EntityKind] | None = None,
                    since: datetime | None = None, until: datetime | None = None, limit: int = 500,
                    datasets: Sequence[str] | None = None, include_alerts: bool = True,
                    evidence: Sequence[str] = (), follow_links: bool = True) -> Timeline:
    """The entity's events (and alerts) in ``[since, until)``, oldest first.

    When more than ``limit`` events match, the newest ``limit`` are kept: an analyst asking
    about an alert cares most about what led up to now. With ``follow_links``, an address's
    successful logins bring in what those accounts did afterwards in the window, each such
    entry labelled with the link (``ztsoc.timeline.link``): an SSH brute force's timeline shows
    the sudo that followed, which names the account, not the address.
    """
    kinds = list(kinds) if kinds else guess_kinds(entity)
    query = entity_query(entity, kinds)
    event_query = query
    if datasets:
        event_query += " AND event.dataset:(" + " OR ".join(quote(d) for d in datasets) + ")"
    result = store.search(event_query, since=since, until=until, index="events", limit=limit,
                          sort="@timestamp", descending=True)
    per_dataset = store.aggregate(["event.dataset"], query=event_query, since=since, until=until, index="events")
    entries = list(result.hits)
    if include_alerts:
        alert_q = f"(ztsoc.alert.entity.value:{quote(entity)} OR {query[1:-1]})"
        entries.extend(store.search(alert_q, since=since, until=until, index="alerts", limit=min(limit, 200),
                                    sort="@timestamp", descending=True).hits)
    if follow_links and _is_ip(entity) and any(k.name == "ip" for k in kinds):
        # the address's successful logins -> what those accounts did afterwards (sudo, ...)
        seen = {str(e.get("event.id")) for e in entries}
        for account, when in linked_accounts(store, entity, since, until):
            after = max(since, from_iso(when)) if since is not None else from_iso(when)
            label = f"{account} (logged in from {entity})"
            q = entity_query(account, [KINDS["user"]])
            if datasets:
                q += " AND event.dataset:(" + " OR ".join(quote(d) for d in datasets) + ")"
            for e in store.search(q, since=after, until=until, index="events", limit=limit, sort="@timestamp",
                                  descending=False).hits:
                if str(e.get("event.id")) not in seen:
                    seen.add(str(e.get("event.id")))
                    e["ztsoc.timeline.link"] = label
                    entries.append(e)
    marked = set(evidence)
    for e in entries:
        if e.get("event.id") in marked:
            e["ztsoc.timeline.evidence"] = True
    # at the same instant an event comes before the alert it raised
    entries.sort(key=lambda d: (str(d.get("@timestamp") or ""), d.get("event.kind") == "alert",
                                str(d.get("event.id") or "")))
    return Timeline(
        entity=entity, kinds=[k.name for k in kinds], query=event_query, since=since, until=until,
        total_events=result.total, entries=entries,
        datasets={str(r["event.dataset"]): int(r["count"]) for r in per_dataset},
        truncated=result.total > len(result.hits),
    )


def alert_window(alert: Doc, before: timedelta, after: timedelta) -> tuple[datetime | None, datetime | None]:
    first = alert.get("ztsoc.alert.first_seen") or alert.get("@timestamp")
    last = alert.get("ztsoc.alert.last_seen") or alert.get("@timestamp")
    start = from_iso(str(first)) - before if first else None
    end = from_iso(str(last)) + after if last else None
    return start, end


def alert_timeline(store: Store, alert: Doc, *, before: timedelta = timedelta(hours=1),
                   after: timedelta = timedelta(hours=1), limit: int = 500,
                   datasets: Sequence[str] | None = None) -> Timeline:
    """The alert's entity around the alert's time span, its evidence events marked."""
    entity = alert.get("ztsoc.alert.entity.value")
    if not entity:
        raise ValueError(f"alert {alert.get('event.id')} names no entity (ztsoc.alert.entity.value)")
    etype = alert.get("ztsoc.alert.entity.type")
    kinds = [kind_named(str(etype))] if etype and str(etype).lower() in {**KIND_ALIASES, **KINDS} else None
    since, until = alert_window(alert, before, after)
    evidence = alert.get("ztsoc.alert.evidence") or []
    if isinstance(evidence, str):
        evidence = [evidence]
    return entity_timeline(store, str(entity), kinds=kinds, since=since, until=until, limit=limit,
                           datasets=datasets, evidence=[str(e) for e in evidence])
