"""Entity-window features, computed from the store's aggregations.

An *entity kind* (users, hosts, service identities) says which field names the entity,
which ``Store.aggregate()`` calls to make (each a query plus metrics, grouped by the
entity and a time bucket of ``window_seconds``) and which features to derive from the
columns they return (on Elasticsearch a cardinality metric is counted from a grouping
instead: see ``CARDINALITY_BY_GROUPING``).
Conditional counts (failures, denials, failed connections) are a
second aggregate call with a narrower query, joined on (entity, window) here; ratios are
computed from the joined columns. Nothing pulls individual events into Python: the
largest answers are one row per entity-window. "Never seen before" features group by
(entity, value) over the whole range with the value's first sighting (a few rows per
entity); DNS query length and label entropy, which no store metric computes, group by
(entity, window, name): one row per distinct name, not one per query.

``KINDS`` is the registry: a new entity kind or feature is an entry, not a branch.
Features that compare a window with the entity's history (new sources, new
destinations, unusual logon hours) read a ``History`` learned on the training period and
saved with the model.

Hand-written here: the join of aggregate answers into a numpy matrix and the
per-window novelty / hour-rarity / entropy arithmetic (no library computes these over
store aggregations).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from eventstore import Doc, Metric, Store
from eventstore.timeutil import from_iso

DEFAULT_WINDOW_SECONDS = 15 * 60
TS = "@timestamp"

# Field names the collectors and the policy engine write (see eventstore/schema.py).
AUTH_QUERY = "event.category:authentication AND NOT event.dataset:policy.decision"
FLOW_QUERY = "event.dataset:network.flow"
DNS_QUERY = "event.dataset:network.dns"
POLICY_QUERY = "event.dataset:policy.decision"
#: A connection that was never answered or was refused (Zeek conn_state S0 / REJ).
FLOW_STATE_FIELD = "ztsoc.flow.state"
FAILED_FLOW_CLAUSE = f"{FLOW_STATE_FIELD}:(S0 OR REJ)"
#: the caller of a decision (policy/decision_log.py writes the principal as ``user.name``)
POLICY_PRINCIPAL_FIELD = "user.name"
POLICY_SERVICE_FIELD = "service.name"


@dataclass(frozen=True, slots=True)
class Aggregation:
    """One ``Store.aggregate`` call, grouped by (entity, window) and optionally one value field."""

    name: str
    query: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    #: When set, rows are (entity, window, value): the feature sees each window's values, and
    #: each metric becomes a column summed over them (e.g. paths per service, added up).
    value_field: str | None = None
    #: With ``value_field``: one row per (entity, value) over the whole range, with the time it
    #: was first seen, instead of one per window: all a "never seen before" feature needs, in
    #: a few rows per entity instead of one per window.
    novelty: bool = False


@dataclass(slots=True)
class WindowData:
    """The joined aggregate answers for one entity kind: one row per active entity-window."""

    kind: str
    window_seconds: int
    entities: list[str]
    starts: np.ndarray  # epoch seconds of each window's start, int64
    columns: dict[str, np.ndarray]  # "<aggregation>.<metric>" -> float64 per row
    values: dict[str, list[dict[str, int]]]  # "<aggregation>" -> per row {value: count}
    #: novelty aggregations: "<aggregation>" -> entity -> value -> first window start (epoch s)
    firsts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    #: (entity, window start) -> row
    index: dict[tuple[str, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entities)

    def col(self, name: str) -> np.ndarray:
        return self.columns.get(name, np.zeros(len(self.entities)))

    def hours(self) -> np.ndarray:
        return ((self.starts // 3600) % 24).astype(np.int64)


@dataclass(slots=True)
class History:
    """What an entity did in the training period: the values it used and its logon hours."""

    #: "<aggregation>" -> entity -> values seen in training
    known: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    #: "<aggregation>" -> entity -> first window (epoch s) each value was seen
    first_seen: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    #: entity -> logons per hour of day (24 counts)
    hours: dict[str, np.ndarray] = field(default_factory=dict)
    #: the whole group's logons per hour of day, for entities with little history
    group_hours: np.ndarray = field(default_factory=lambda: np.zeros(24))
    #: values first seen before this time are not "new" while training (warm-up)
    warmup_until: int = 0

    def to_state(self) -> dict[str, Any]:
        return {
            "known": {a: {e: sorted(v) for e, v in per.items()} for a, per in self.known.items()},
            "hours": {e: h.tolist() for e, h in self.hours.items()},
            "group_hours": self.group_hours.tolist(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> History:
        return cls(
            known={a: {e: set(v) for e, v in per.items()} for a, per in state["known"].items()},
            hours={e: np.asarray(h, dtype=float) for e, h in state["hours"].items()},
            group_hours=np.asarray(state["group_hours"], dtype=float),
        )


@dataclass(frozen=True, slots=True)
class FeatureContext:
    history: History
    #: True while learning: "new" means first seen in the training period after warm-up.
    training: bool


FeatureFn = Callable[[WindowData, FeatureContext], np.ndarray]


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    #: what the analyst reads: "distinct destination ports 412, baseline p99 9"
    label: str
    compute: FeatureFn
    #: counts and sums are compared on a log scale; ratios, entropies and rarities are not
    log_scale: bool = True


@dataclass(frozen=True, slots=True)
class EntityKind:
    name: str
    entity_field: str
    #: alert entity type (ztsoc.alert.entity.type)
    entity_type: str
    aggregations: tuple[Aggregation, ...]
    features: tuple[Feature, ...]
    #: the logons of each window, for the hour-of-day profile (kinds that have logons)
    logons: FeatureFn | None = None
    description: str = ""
    #: ATT&CK tags (Sigma form) put on this kind's alerts: what its anomalies usually are
    tags: tuple[str, ...] = ()

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def query_of(self, name: str) -> str:
        for agg in self.aggregations:
            if agg.name == name:
                return agg.query
        raise KeyError(name)


# -- feature functions ------------------------------------------------------------------


def column(name: str) -> FeatureFn:
    return lambda data, ctx: data.col(name)


def ratio(numerator: str, denominator: str) -> FeatureFn:
    def fn(data: WindowData, ctx: FeatureContext) -> np.ndarray:
        den = data.col(denominator)
        return np.divide(data.col(numerator), den, out=np.zeros_like(den), where=den > 0)

    return fn


def difference(a: str, b: str) -> FeatureFn:
    return lambda data, ctx: np.maximum(data.col(a) - data.col(b), 0.0)



def total(aggregation: str) -> FeatureFn:
    return lambda data, ctx: np.fromiter((sum(v.values()) for v in data.values[aggregation]), float, len(data))


def new_values(aggregation: str) -> FeatureFn:
    """Values this entity had never used, counted in the window of their first sighting:
    unknown to the model when scoring; first seen in the training period (after a warm-up)
    when training, so the threshold learns how much novelty is normal."""

    def fn(data: WindowData, ctx: FeatureContext) -> np.ndarray:
        out = np.zeros(len(data))
        firsts = data.firsts.get(aggregation, {})
        known = ctx.history.known.get(aggregation, {})
        warm = ctx.history.warmup_until
        empty: set[str] = set()
        for entity, per in firsts.items():
            k = empty if ctx.training else known.get(entity, empty)
            for value, start in per.items():
                if (start >= warm) if ctx.training else (value not in k):
                    i = data.index.get((entity, start))
                    if i is not None:
                        out[i] += 1
        return out

    return fn




def hour_rarity(logons_of: FeatureFn, min_history: int = 20) -> FeatureFn:
    """How unusual the hour is for this entity's logons (bits of surprise; 0 without logons).

    Entities with fewer than ``min_history`` training logons use the group's profile."""

    def fn(data: WindowData, ctx: FeatureContext) -> np.ndarray:
        logons = logons_of(data, ctx)
        hours = data.hours()
        group = ctx.history.group_hours
        group_p = (group + 1.0) / (group.sum() + 24.0)
        out = np.zeros(len(data))
        for i in np.nonzero(logons > 0)[0]:
            prof = ctx.history.hours.get(data.entities[i])
            if prof is not None and prof.sum() >= min_history:
                p = (prof[hours[i]] + 0.5) / (prof.sum() + 12.0)
            else:
                p = group_p[hours[i]]
            out[i] = -math.log2(p)
        return out

    return fn


def shannon_entropy(text: str) -> float:
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _longest_label(name: str) -> str:
    return max(name.rstrip(".").split("."), key=len) if name else ""


def dns_max_length(aggregation: str) -> FeatureFn:
    return lambda data, ctx: np.fromiter(
        (max((len(n) for n in v), default=0) for v in data.values[aggregation]), float, len(data))


def dns_max_entropy(aggregation: str) -> FeatureFn:
    def fn(data: WindowData, ctx: FeatureContext) -> np.ndarray:
        cache: dict[str, float] = {}
        out = np.zeros(len(data))
        for i, names in enumerate(data.values[aggregation]):
            best = 0.0
            for n in names:
                e = cache.get(n)
                if e is None:
                    e = cache[n] = shannon_entropy(_longest_label(n))
                best = max(best, e)
            out[i] = best
        return out

    return fn


# -- the registry -------------------------------------------------------------------------

KINDS: dict[str, EntityKind] = {
    "user": EntityKind(
        name="user",
        entity_field="user.name",
        entity_type="user",
        description="accounts, from authentication events",
        aggregations=(
            # attempts per window (one row each), failures only where there are some (few rows)
            Aggregation("fail", f"({AUTH_QUERY}) AND event.outcome:failure"),
            Aggregation("auth", AUTH_QUERY, {
                "sources": Metric("cardinality", "source.ip"),
                "hosts": Metric("cardinality", "host.name"),
            }),
            Aggregation("src", AUTH_QUERY, value_field="source.ip", novelty=True),
            Aggregation("host", AUTH_QUERY, value_field="host.name", novelty=True),
        ),
        features=(
            Feature("logons", "logons (attempts that did not fail)", difference("auth.count", "fail.count")),
            Feature("failures", "failed logons", column("fail.count")),
            Feature("failure_ratio", "failure ratio", ratio("fail.count", "auth.count"), log_scale=False),
            Feature("distinct_sources", "distinct source IPs", column("auth.sources")),
            Feature("distinct_hosts", "distinct hosts", column("auth.hosts")),
            Feature("new_sources", "source IPs never seen for this user", new_values("src")),
            Feature("new_hosts", "hosts this user never used", new_values("host")),
            Feature("unusual_hour", "logon-hour rarity (bits)", hour_rarity(difference("auth.count", "fail.count")),
                    log_scale=False),
        ),
        logons=difference("auth.count", "fail.count"),
        tags=("attack.credential-access", "attack.t1110", "attack.lateral-movement", "attack.t1078"),
    ),
    "host": EntityKind(
        name="host",
        entity_field="source.ip",
        entity_type="ip",
        description="hosts by source IP, from network flows and DNS",
        tags=("attack.discovery", "attack.t1046", "attack.exfiltration", "attack.t1048", "attack.t1071.004"),
        aggregations=(
            Aggregation("flow", FLOW_QUERY, {
                "bytes": Metric("sum", "source.bytes"),
                "ports": Metric("cardinality", "destination.port"),
                "dests": Metric("cardinality", "destination.ip"),
            }),
            Aggregation("failed", f"{FLOW_QUERY} AND {FAILED_FLOW_CLAUSE}"),
            Aggregation("dst", FLOW_QUERY, value_field="destination.ip", novelty=True),
            Aggregation("dns", DNS_QUERY, value_field="dns.question.name"),
        ),
        features=(
            Feature("connections", "connections out", column("flow.count")),
            Feature("bytes_out", "bytes out", column("flow.bytes")),
            Feature("distinct_destinations", "distinct destinations", column("flow.dests")),
            Feature("distinct_ports", "distinct destination ports", column("flow.ports")),
            Feature("failed_connections", "failed connections (S0/REJ)", column("failed.count")),
            Feature("failed_ratio", "failed-connection ratio", ratio("failed.count", "flow.count"),
                    log_scale=False),
            Feature("new_destinations", "destinations never contacted before", new_values("dst")),
            Feature("dns_queries", "DNS queries", total("dns")),
            Feature("dns_max_length", "longest DNS query name", dns_max_length("dns"), log_scale=False),
            Feature("dns_max_entropy", "DNS label entropy (bits/char)", dns_max_entropy("dns"),
                    log_scale=False),
        ),
    ),
    "service": EntityKind(
        name="service",
        entity_field=POLICY_PRINCIPAL_FIELD,
        entity_type="service",
        description="service identities, from policy decisions",
        tags=("attack.defense-evasion", "attack.lateral-movement", "attack.t1550"),
        aggregations=(
            Aggregation("deny", f"{POLICY_QUERY} AND event.outcome:failure"),
            Aggregation("calls", POLICY_QUERY, {
                "services": Metric("cardinality", POLICY_SERVICE_FIELD),
                "paths": Metric("cardinality", "url.path"),
            }),
            Aggregation("svc", POLICY_QUERY, value_field=POLICY_SERVICE_FIELD, novelty=True),
            Aggregation("src", POLICY_QUERY, value_field="source.ip", novelty=True),
        ),
        features=(
            Feature("calls", "calls", column("calls.count")),
            Feature("denies", "denied calls", column("deny.count")),
            Feature("deny_ratio", "deny ratio", ratio("deny.count", "calls.count"), log_scale=False),
            Feature("distinct_services", "distinct destination services", column("calls.services")),
            Feature("distinct_paths", "distinct paths", column("calls.paths")),
            Feature("new_services", "destination services never called before", new_values("svc")),
            Feature("new_sources", "source IPs never seen for this identity", new_values("src")),
        ),
    ),
}


# -- collecting from the store --------------------------------------------------------------


def _epoch(ts: Any, cache: dict[Any, int]) -> int:
    """A bucket's start in epoch seconds; buckets repeat across rows, so parse each once."""
    v = cache.get(ts)
    if v is None:
        if isinstance(ts, (int, float)):
            v = int(ts // 1000) if ts > 1e11 else int(ts)
        else:
            v = int(from_iso(str(ts)).timestamp())
        cache[ts] = v
    return v


def collect(store: Store, kind: EntityKind, since: datetime | None, until: datetime | None,
            window_seconds: int = DEFAULT_WINDOW_SECONDS) -> WindowData:
    """Run the kind's aggregations over ``[since, until)`` and join them per entity-window."""
    ef = kind.entity_field
    index: dict[tuple[str, int], int] = {}
    entities: list[str] = []
    starts: list[int] = []
    raw_cols: dict[str, dict[int, float]] = {}
    raw_vals: dict[str, dict[int, dict[str, int]]] = {}

    seen: dict[Any, int] = {}

    def row_of(entity: Any, start: int) -> int:
        key = (str(entity), start)
        i = index.get(key)
        if i is None:
            i = index[key] = len(entities)
            entities.append(key[0])
            starts.append(start)
        return i

    firsts: dict[str, dict[str, dict[str, int]]] = {}
    for agg in kind.aggregations:
        if agg.novelty and agg.value_field:
            vf = agg.value_field
            w = window_seconds
            per_entity = firsts.setdefault(agg.name, {})
            for r in store.aggregate([ef, vf], {"first": Metric("min", TS)}, query=agg.query, since=since,
                                     until=until):
                if r.get("first") is None:
                    continue
                start = _epoch(r["first"], seen) // w * w
                per_entity.setdefault(str(r[ef]), {})[str(r[vf])] = start
            continue
        group = [ef, agg.value_field] if agg.value_field else [ef]
        rows = _aggregate(store, group, agg.metrics, query=agg.query, since=since, until=until,
                          interval_seconds=window_seconds)
        if agg.value_field:
            vf = agg.value_field
            per = raw_vals.setdefault(agg.name, {})
            sums = [(m, raw_cols.setdefault(f"{agg.name}.{m}", {})) for m in agg.metrics]
            for r in rows:
                i = row_of(r[ef], _epoch(r["@timestamp"], seen))
                per.setdefault(i, {})[str(r[vf])] = int(r["count"])
                for m, col in sums:  # a metric of a value aggregation: summed over the values
                    col[i] = col.get(i, 0.0) + float(r.get(m) or 0.0)
        else:
            names = ["count", *agg.metrics]
            cols = [raw_cols.setdefault(f"{agg.name}.{m}", {}) for m in names]
            for r in rows:
                i = row_of(r[ef], _epoch(r["@timestamp"], seen))
                for m, c in zip(names, cols, strict=True):
                    c[i] = float(r.get(m) or 0.0)

    n = len(entities)
    columns: dict[str, np.ndarray] = {}
    for name, mapping in raw_cols.items():
        arr = np.zeros(n)
        if mapping:
            arr[np.fromiter(mapping.keys(), np.int64, len(mapping))] = np.fromiter(
                mapping.values(), float, len(mapping))
        columns[name] = arr
    for agg in kind.aggregations:
        for m in ([] if agg.value_field else ["count"]) + list(agg.metrics):
            columns.setdefault(f"{agg.name}.{m}", np.zeros(n))
    values: dict[str, list[dict[str, int]]] = {}
    empty: dict[str, int] = {}
    for agg in kind.aggregations:
        if agg.value_field and not agg.novelty:
            per = raw_vals.get(agg.name, {})
            values[agg.name] = [per.get(i, empty) for i in range(n)]
    return WindowData(kind.name, window_seconds, entities, np.asarray(starts, dtype=np.int64), columns, values,
                      firsts, index)


#: Backends where a cardinality metric is computed as a grouping by the field instead:
#: Elasticsearch's cardinality sub-aggregation (``precision_threshold`` 40000 in es_store)
#: over a composite page of 5000 buckets tripped the request circuit breaker (HTTP 429) on
#: the shared node when this was written; terms groupings page through without that cost.
CARDINALITY_BY_GROUPING: frozenset[str] = frozenset({"elasticsearch"})


def _aggregate(store: Store, group: list[str], metrics: Mapping[str, Metric], **kw: Any) -> list[Doc]:
    """``store.aggregate``, with cardinality metrics counted from a grouping on backends
    listed in ``CARDINALITY_BY_GROUPING`` (exact, and the same answer)."""
    cards = {k: m for k, m in metrics.items() if m.op == "cardinality"}
    if store.backend not in CARDINALITY_BY_GROUPING or not cards:
        return store.aggregate(group, dict(metrics), **kw)
    rows = store.aggregate(group, {k: m for k, m in metrics.items() if k not in cards}, **kw)
    keys = [TS, *group] if kw.get("interval_seconds") else list(group)
    by_key = {tuple(r.get(g) for g in keys): r for r in rows}
    for r in rows:
        r.update(dict.fromkeys(cards, 0))
    for k, m in cards.items():
        for r in store.aggregate([*group, str(m.field)], {}, **kw):
            row = by_key.get(tuple(r.get(g) for g in keys))
            if row is not None:
                row[k] += 1
    return rows


def learn_history(kind: EntityKind, data: WindowData, warmup_fraction: float = 0.2) -> History:
    """The values each entity used and its logon hours over the training windows."""
    hist = History()
    for agg in kind.aggregations:
        if not agg.novelty:
            continue
        per = data.firsts.get(agg.name, {})
        hist.known[agg.name] = {e: set(vals) for e, vals in per.items()}
        hist.first_seen[agg.name] = {e: dict(vals) for e, vals in per.items()}
    if len(data):
        lo, hi = int(data.starts.min()), int(data.starts.max())
        hist.warmup_until = lo + int((hi - lo) * warmup_fraction)
    if kind.logons is not None:
        logons = kind.logons(data, FeatureContext(hist, training=True))
        hours = data.hours()
        nz = np.nonzero(logons > 0)[0]
        for i in nz:
            prof = hist.hours.get(data.entities[i])
            if prof is None:
                prof = hist.hours[data.entities[i]] = np.zeros(24)
            prof[hours[i]] += logons[i]
        hist.group_hours = np.bincount(hours[nz], weights=logons[nz], minlength=24).astype(float)
    return hist


def feature_matrix(kind: EntityKind, data: WindowData, ctx: FeatureContext) -> np.ndarray:
    """(windows x features), float64, in the kind's feature order."""
    if not len(data):
        return np.zeros((0, len(kind.features)))
    return np.column_stack([f.compute(data, ctx) for f in kind.features]).astype(np.float64)


def select_kinds(names: Sequence[str] | None) -> list[EntityKind]:
    if not names:
        return list(KINDS.values())
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise ValueError(f"unknown entity kind(s) {', '.join(unknown)}: expected {', '.join(KINDS)}")
    return [KINDS[n] for n in names]
