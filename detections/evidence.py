"""Every event behind an alert, found again by query: the rule's matches in the alert's window and group.

An alert stores a bounded sample of its evidence ids (``ztsoc.alert.evidence``, at most
``detections.alerts.MAX_EVIDENCE``) and the count of them all (``ztsoc.alert.evidence_count``);
an alert over 3,560 events must not carry 3,560 ids. The full list is not stored but asked
for: the events of the alert's window (``first_seen`` .. ``last_seen``) that carry the alert's
group values are streamed from the store, oldest first, and kept when the rule matches them
(for a correlation, when one of the rules it counts matches them, with that rule's group
fields). The same compiled rules as the detection run decide, so the answer is the run's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from detections.risk import quote
from detections.sigma.correlation import CorrelationSpec
from detections.sigma.correlation import _value as group_value
from detections.sigma.engine import CompiledSet
from detections.sigma.matcher import CompiledRule, EventView
from eventstore.store import Doc, Store
from eventstore.timeutil import from_iso

#: past ``last_seen``: the store's time filter is exclusive at the top
_EDGE = timedelta(milliseconds=1)


class EvidenceUnavailable(LookupError):
    """The alert's rule is not among the loaded rules (another rules folder, an anomaly model...)."""


@dataclass(frozen=True, slots=True)
class _Leg:
    """A base rule behind the alert and the fields carrying each group value on its events."""

    rule: CompiledRule
    fields: dict[str, str]  # group name -> field on this rule's events


def _legs(cs: CompiledSet, key: str, group: Mapping[str, Any]) -> list[_Leg]:
    base = {cr.key: cr for cr in cs.base}
    specs = {s.key: s for s in cs.specs}
    if key in base:
        return [_Leg(base[key], {name: name for name in group})]
    spec: CorrelationSpec | None = specs.get(key)
    if spec is None:
        raise EvidenceUnavailable(f"rule {key} is not among the loaded rules (pass its folder with --rules)")
    legs: list[_Leg] = []
    for ref in spec.refs:
        fields = dict(zip(spec.group_names, spec.group_fields.get(ref, spec.group_names), strict=False))
        if ref in base:
            legs.append(_Leg(base[ref], fields))
        else:  # a correlation of correlations: the rules below, with the same group names
            legs += [_Leg(leg.rule, {n: fields.get(n, n) for n in leg.fields}) for leg in _legs(cs, ref, group)]
    return legs


def alert_group(alert: Mapping[str, Any]) -> dict[str, str]:
    """The group an alert was raised for: the alert's fields named in ``ztsoc.alert.group_key``.

    The key is ``name=value|name=value`` (sorted by name) and the alert document carries each
    group value under its name, so a field belongs to the group when ``name=value`` is one of
    the key's segments (checked as a whole segment: values may hold ``|``).
    """
    key = str(alert.get("ztsoc.alert.group_key") or "")
    out: dict[str, str] = {}
    if not key:
        return out
    for name, raw in alert.items():
        value = str(raw[0] if isinstance(raw, list) and raw else raw)
        seg = f"{name}={value}"
        if key == seg or key.startswith(seg + "|") or key.endswith("|" + seg) or f"|{seg}|" in key:
            out[name] = value
    return out


def evidence_events(store: Store, cs: CompiledSet, alert: Mapping[str, Any]) -> Iterator[Doc]:
    """The alert's evidence, oldest first, however many there are."""
    key = str(alert.get("rule.id"))
    group = alert_group(alert)
    legs = _legs(cs, key, group)
    first = alert.get("ztsoc.alert.first_seen") or alert.get("event.start")
    last = alert.get("ztsoc.alert.last_seen") or alert.get("event.end")
    since = from_iso(str(first)) if first else None
    until = from_iso(str(last)) + _EDGE if last else None
    margin = cs.margin.get(key, 0.0)
    if since is not None and until is not None and margin:
        # a correlation of correlations: the inner windows may start before the outer one
        since = min(since, until - _EDGE - timedelta(seconds=margin))
    # the store narrows by the group values when every leg names the same field for them
    terms = []
    for name, value in group.items():
        fields = {leg.fields.get(name, name) for leg in legs}
        if len(fields) == 1:
            terms.append(f"{next(iter(fields))}:{quote(value)}")
    query = " AND ".join(terms) or "*"
    for doc in store.scan(query, since=since, until=until):
        ev = EventView(doc)
        for leg in legs:
            if all(group_value(doc, leg.fields.get(n, n)) == v for n, v in group.items()) and leg.rule.predicate(ev):
                yield doc
                break


def rule_fields(cs: CompiledSet, key: str) -> tuple[str, ...]:
    """The fields the rule behind an alert looks at: what its evidence should show.

    A base rule: the fields its detection tests (not the log-source pins such as
    ``event.code``). A correlation: its group-by and value fields, then those of the rules
    it counts.
    """
    from detections.sigma.matcher import INDEX_FIELDS, detection_fields

    base = {cr.key: cr for cr in cs.base}
    specs = {s.key: s for s in cs.specs}
    out: dict[str, None] = {}

    def walk(k: str, depth: int = 0) -> None:
        if depth > 10:
            return
        cr = base.get(k)
        if cr is not None:
            for f in detection_fields(cr):
                if f not in INDEX_FIELDS:
                    out.setdefault(f, None)
            return
        spec = specs.get(k)
        if spec is None:
            return
        for f in [*spec.group_names, *spec.value_fields.values()]:
            out.setdefault(f, None)
        for ref in spec.refs:
            walk(ref, depth + 1)

    walk(key)
    return tuple(out)


_SHIPPED: CompiledSet | None = None


def shipped_rule_fields(rule_id: str) -> tuple[str, ...]:
    """``rule_fields`` of a shipped rule (compiled-rule cache, loaded once per process); () for others."""
    from detections.sigma.cache import load_compiled_cached

    global _SHIPPED
    if not rule_id:
        return ()
    if _SHIPPED is None:
        _SHIPPED = load_compiled_cached()[1]
    return rule_fields(_SHIPPED, rule_id)


def sample_ids(alert: Mapping[str, Any], limit: int) -> list[str]:
    """The evidence ids to show: the first and the last (how it started, how it ended: a brute force's success is last)."""
    ids = alert.get("ztsoc.alert.evidence") or []
    ids = [str(ids)] if isinstance(ids, str) else [str(i) for i in ids]
    half = max(limit // 2, 1)
    return ids if len(ids) <= limit else [*ids[:half], *ids[-half:]]


def decisive_first(alert: Mapping[str, Any], events: list[Doc]) -> list[Doc]:
    """The events with ``ztsoc.evidence.fields`` (what the rule decides on), the successes first.

    One place for the CLI's ``alerts show`` and the dashboard's alert detail, so both say the same.
    """
    fields = shipped_rule_fields(str(alert.get("rule.id") or ""))
    out = []
    for e in events:
        e = dict(e)
        e["ztsoc.evidence.fields"] = {f: e[f] for f in fields if e.get(f) not in (None, "", [])}
        out.append(e)
    out.sort(key=lambda e: e.get("event.outcome") != "success")
    return out
