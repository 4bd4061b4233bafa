"""The data behind each dashboard page, computed with the store's own aggregations.

Every page of the web dashboard is one entry of ``VIEWS`` (name -> function of the store
and the request's filters). The JSON API serves exactly these dicts, and the page draws
them, so what the browser shows is what the API returns (the browser tests compare both
with the store's own counts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards.i18n import Refused, says
from detections.evidence import decisive_first, sample_ids
from detections.guides import rule_guide
from detections.lifecycle import LEVELS, OPEN_STATUSES
from detections.ml.features import shannon_entropy
from detections.risk import entity_risk, quote
from detections.timeline import alert_timeline
from eventstore.errors import QuerySyntaxError
from eventstore.store import ALERT_STATUS, Doc, Metric, Store
from eventstore.timeutil import parse_time, to_iso, utcnow
from locales import N_

Params = Mapping[str, str]

#: Fields of a policy decision event (written by ``policy.decision_log``).
PRINCIPAL = "user.name"
SERVICE = "service.name"
DECISION_DATASET = "event.dataset:policy.decision"

#: Columns of the alert list, in order.
ALERT_COLUMNS = ("event.id", "@timestamp", "ztsoc.alert.level", "rule.id", "rule.name", "ztsoc.alert.entity.value",
                 ALERT_STATUS, "ztsoc.alert.assignee", "threat.technique.id")


#: how far back ``since`` may go: the overview draws a point per bucket from ``since`` to now (a week a
#: bucket at most), so an unbounded ``since=100000000d`` was an OverflowError (a 500), and a year-1 ISO
#: time would have been 100,000 points
MAX_SINCE = timedelta(days=3660)
MAX_LIMIT = 1000


def _since(params: Params, default: str = "24h") -> datetime:
    text = params.get("since") or default
    try:
        since = parse_time(text)
    except (ValueError, OverflowError):
        raise Refused(says(N_("since: expected 15m, 24h, 7d or an ISO 8601 time, not {value}"),
                           value=repr(text))) from None
    if since < utcnow() - MAX_SINCE:
        raise Refused(says(N_("since: at most {days} days back"), days=MAX_SINCE.days))
    return since


def _interval(since: datetime) -> int:
    """About 48 buckets over the range, rounded to a readable step."""
    span = (utcnow() - since).total_seconds()
    for step in (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400):
        if span / step <= 60:
            return step
    return 7 * 86400


def _terms(store: Store, field: str, query: str, since: datetime, limit: int = 10, index: str = "events",
           metrics: Mapping[str, Metric] | None = None) -> list[Doc]:
    return store.aggregate([field], metrics, query=query, since=since, index=index, limit=limit)  # type: ignore[arg-type]


def overview(store: Store, params: Params) -> dict[str, Any]:
    since = _since(params)
    open_query = "ztsoc.alert.status:(" + " OR ".join(OPEN_STATUSES) + ")"
    by_level = {row["ztsoc.alert.level"]: row["count"] for row in
                _terms(store, "ztsoc.alert.level", open_query, since, index="alerts")}
    by_status = {row[ALERT_STATUS]: row["count"] for row in _terms(store, ALERT_STATUS, "*", since, index="alerts")}
    interval = _interval(since)
    over_time = store.aggregate([], query="*", since=since, index="alerts", interval_seconds=interval)
    top_entities = _terms(store, "ztsoc.alert.entity.value", open_query, since, limit=10, index="alerts")
    ranked = sorted((entity_risk(store, str(row["ztsoc.alert.entity.value"])) for row in top_entities),
                    key=lambda r: (-r.score, r.entity))
    risks = [{"entity": r.entity, "score": round(r.score, 1), "band": r.band, "alerts": r.alerts,
              "top_rules": r.top_rules} for r in ranked]
    # the newest event of each dataset from the same aggregation: no query is built from a stored value
    # (a dataset named 'webapp"' broke this page for everyone, audit finding 1)
    health_rows = _terms(store, "event.dataset", "*", since, limit=50, metrics={"last": Metric("max", "@timestamp")})
    per_hour = store.aggregate(["event.dataset"], query="*", since=since, index="events", interval_seconds=3600)
    return {
        "since": to_iso(since),
        "open_alerts": sum(by_level.values()),
        "open_by_level": {level: by_level.get(level, 0) for level in LEVELS},
        "by_status": by_status,
        "alerts_over_time": zero_filled(over_time, since, interval),
        "top_rules": [{"rule": r["rule.name"], "rule_id": r["rule.id"], "count": r["count"]}
                      for r in store.aggregate(["rule.id", "rule.name"], query="*", since=since, index="alerts",
                                               limit=10)],
        "top_entities": risks,
        "collection": [{"dataset": r["event.dataset"], "events": r["count"], "last_event": r.get("last")}
                       for r in health_rows],
        "events_per_hour": sorted(({"t": r["@timestamp"], "dataset": r["event.dataset"], "count": r["count"]}
                                   for r in per_hour), key=lambda r: (r["t"], r["dataset"])),
    }


def zero_filled(rows: list[Doc], since: datetime, interval: int) -> list[dict[str, Any]]:
    """One point per bucket from ``since`` to now, 0 where the store has none (a quiet hour is a 0, not a gap)."""
    counts = {int(parse_time(str(r["@timestamp"])).timestamp()) // interval: int(r["count"]) for r in rows}
    first, last = int(since.timestamp()) // interval, int(utcnow().timestamp()) // interval
    first = min([first, *counts])
    return [{"t": to_iso(datetime.fromtimestamp(b * interval, UTC)), "count": counts.get(b, 0)}
            for b in range(first, max([last, *counts]) + 1)]


def alert_query(params: Params) -> str:
    """The filters of the alert page as one query string (the same syntax as ``soc alerts``).

    Each filter value is one quoted term whatever it holds (``detections.risk.quote``); ``q`` is
    the analyst's own query, in parentheses."""
    parts = []
    for key, field in (("status", ALERT_STATUS), ("level", "ztsoc.alert.level"), ("rule", "rule.name"),
                       ("entity", "ztsoc.alert.entity.value"), ("assignee", "ztsoc.alert.assignee")):
        if value := params.get(key):
            parts.append(f"{field}:{quote(value)}")
    if q := params.get("q"):
        parts.append(f"({q})")
    return " AND ".join(parts) or "*"


def alerts(store: Store, params: Params) -> dict[str, Any]:
    since = _since(params, "7d")
    query = alert_query(params)
    text = params.get("limit") or "200"
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise Refused(says(N_("limit: expected a whole number up to {max}, not {value}"), max=MAX_LIMIT,
                           value=repr(text)))
    limit = min(int(text), MAX_LIMIT)
    try:
        result = store.search(query, since=since, index="alerts", limit=limit, fields=list(ALERT_COLUMNS))
    except QuerySyntaxError as exc:  # the parser's own bounds (nesting, length) included: named as the field
        raise Refused(says(N_("q: {reason}"), reason=str(exc))) from None
    return {"query": query, "total": result.total, "alerts": result.hits}


def alert_detail(store: Store, alert_id: str) -> dict[str, Any] | None:
    alert = store.get_alert(alert_id)
    if alert is None:
        return None
    evidence = [doc for doc in (store.get_event(eid) for eid in sample_ids(alert, 50)) if doc is not None]
    entity = alert.get("ztsoc.alert.entity.value")
    risk = entity_risk(store, str(entity)) if entity else None
    # what `soc alerts show` says: the rule's fields, the successes first, the guide with the alert's values
    return {"alert": alert, "evidence": decisive_first(alert, evidence),
            "evidence_total": max(int(alert.get("ztsoc.alert.evidence_count") or 0), len(evidence)),
            "risk": None if risk is None else {"entity": risk.entity, "score": round(risk.score, 1),
                                               "band": risk.band, "alerts": risk.alerts},
            "guide": rule_guide(alert).to_doc(), "timeline": _timeline(store, alert)}


def _timeline(store: Store, alert: Doc) -> list[dict[str, Any]]:
    """`soc alerts timeline`: the entity an hour either side, and what linked accounts did (labelled)."""
    try:
        return alert_timeline(store, alert, limit=200).rows()
    except ValueError:  # an alert that names no entity
        return []


def network(store: Store, params: Params) -> dict[str, Any]:
    since = _since(params)
    flows = "event.dataset:network.flow"
    talkers = store.aggregate(["source.ip"], {"bytes": Metric("sum", "source.bytes"),
                                              "peers": Metric("cardinality", "destination.ip")},
                              query=flows, since=since, limit=10)
    talkers.sort(key=lambda r: (-(r.get("bytes") or 0), str(r["source.ip"])))
    over_time = store.aggregate([], query=flows, since=since, interval_seconds=_interval(since))
    names = _terms(store, "dns.question.name", "event.dataset:network.dns", since, limit=5000)
    sni = _terms(store, "tls.client.server_name", "event.dataset:network.tls", since, limit=15)
    return {
        "since": to_iso(since),
        "top_talkers": [{"ip": r["source.ip"], "bytes": r.get("bytes") or 0, "connections": r["count"],
                         "peers": r.get("peers") or 0} for r in talkers],
        "flows_over_time": sorted(({"t": r["@timestamp"], "count": r["count"]} for r in over_time),
                                  key=lambda r: r["t"]),
        "top_domains": [{"name": r["dns.question.name"], "count": r["count"]} for r in names[:15]],
        **odd_dns(names),
        "tls_sni": [{"server_name": r["tls.client.server_name"], "count": r["count"]} for r in sni],
    }


def odd_dns(names: list[Doc], min_names: int = 20) -> dict[str, Any]:
    """Domains under which many distinct, long, random-looking names are asked: tunnelling's shape."""
    per_domain: dict[str, set[str]] = defaultdict(set)
    odd_queries = []
    for row in names:
        name = str(row["dns.question.name"]).rstrip(".")
        labels = name.split(".")
        if len(labels) >= 3 and len(labels[0]) >= 30 and shannon_entropy(labels[0]) >= 3.5:
            per_domain[".".join(labels[-2:])].add(name)
            odd_queries.append({"name": name, "count": row["count"]})
    ranked = sorted(((len(n), d) for d, n in per_domain.items() if len(n) >= min_names), key=lambda r: (-r[0], r[1]))
    return {"odd_domains": [{"domain": d, "names": n} for n, d in ranked], "odd_queries": odd_queries[:20]}


def identity(store: Store, params: Params) -> dict[str, Any]:
    since = _since(params)
    over_time = store.aggregate(["event.action"], query=DECISION_DATASET, since=since,
                                interval_seconds=_interval(since))
    denied = store.aggregate([PRINCIPAL, SERVICE], query=f"{DECISION_DATASET} AND event.action:deny", since=since,
                             limit=10)
    risky = [r for r in overview_entities(store, since) if r["entity"].startswith("spiffe://")]
    changes = store.search("event.dataset:policy.change", since=since, limit=20,
                           fields=["@timestamp", "user.name", "message", "file.name", "ztsoc.policy.rule"]).hits
    return {
        "since": to_iso(since),
        "decisions_over_time": sorted(({"t": r["@timestamp"], "action": r["event.action"], "count": r["count"]}
                                       for r in over_time), key=lambda r: (r["t"], r["action"])),
        "top_denied": [{"principal": r[PRINCIPAL], "service": r[SERVICE], "count": r["count"]} for r in denied],
        "risky_identities": risky,
        "policy_changes": [{"@timestamp": c.get("@timestamp"), "actor": c.get("user.name"),
                            "summary": c.get("message") or c.get("file.name")} for c in changes],
    }


def overview_entities(store: Store, since: datetime) -> list[dict[str, Any]]:
    return list(overview(store, {"since": to_iso(since)})["top_entities"])


def exercises(store: Store, params: Params) -> dict[str, Any]:
    rows = [value for _, value in store.list_state("scoreboard")]
    rows.sort(key=lambda r: (-float(r.get("score", 0)), float(r.get("seconds", 0)), str(r.get("trainee", ""))))
    return {"scoreboard": rows}


VIEWS: dict[str, Callable[[Store, Params], dict[str, Any]]] = {
    "overview": overview,
    "alerts": alerts,
    "network": network,
    "identity": identity,
    "exercises": exercises,
}
