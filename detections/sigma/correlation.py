"""Sigma v2 correlation rules over sliding windows, evaluated on matched events in time order.

Why ours: pySigma converts correlations to queries that bucket by clock time (ES|QL) or
count events instead of distinct values (EQL ``value_count``); a burst straddling a bucket
boundary is then missed. Here every matched event closes a window ``[t - timespan, t]``
ending on itself, per group (the ``group-by`` values), so a window is never cut by the
clock. Supported: ``event_count``, ``value_count`` (distinct values), ``value_sum``,
``value_avg``, ``temporal`` (with extended boolean conditions) and ``temporal_ordered``;
correlations may reference correlations (a firing is an input event of the next level).

Feed matches oldest first with :meth:`CorrelationEngine.feed`; each call returns the
firings it caused. A group that keeps satisfying its condition fires on every new event,
carrying only the evidence not reported before, so a 10,000-event burst costs O(events).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

Op = SigmaCorrelationConditionOperator
_OPS = {
    Op.LT: lambda a, b: a < b, Op.LTE: lambda a, b: a <= b, Op.GT: lambda a, b: a > b,
    Op.GTE: lambda a, b: a >= b, Op.EQ: lambda a, b: a == b, Op.NEQ: lambda a, b: a != b,
}
MAX_EVIDENCE = 500


class UnsupportedCorrelation(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Firing:
    """A correlation whose condition holds for the window ending at ``ts``."""

    rule_key: str
    ts: float
    window_start: float
    group: tuple[tuple[str, str], ...]
    evidence: tuple[str, ...]  # event ids not reported by an earlier firing of this window
    value: float  # the count / distinct count / sum compared with the condition

    def group_doc(self) -> dict[str, str]:
        return dict(self.group)


@dataclass(slots=True)
class _Entry:
    ts: float
    seq: int
    rule: str
    value: Any
    evidence: tuple[str, ...]


@dataclass(slots=True)
class _GroupState:
    entries: deque[_Entry] = field(default_factory=deque)
    values: Counter[Any] = field(default_factory=Counter)
    total: float = 0.0
    reported_seq: int = -1


@dataclass
class CorrelationSpec:
    key: str
    type: SigmaCorrelationType
    refs: list[str]  # keys of referenced rules, in rule order
    group_names: list[str]
    group_fields: dict[str, list[str]]  # ref key -> field per group name
    span: float
    condition: SigmaCorrelationCondition | SigmaExtendedCorrelationCondition
    value_fields: dict[str, str]  # ref key -> field counted / summed
    generate: bool = False
    ref_names: dict[str, str] = field(default_factory=dict)  # reference text -> key

    @classmethod
    def from_rule(cls, rule: SigmaCorrelationRule, key: str, targets: Sequence[str]) -> CorrelationSpec:
        """``rule`` with the pipeline applied; ``targets``: our key of each referenced rule, in order."""
        refs: list[str] = list(targets)
        ref_names: dict[str, str] = {}  # reference text (name/id) -> our key
        for ref, target in zip(rule.rules or [], targets, strict=True):
            ref_names[ref.reference] = target
        names = list(rule.group_by or [])
        group_fields: dict[str, list[str]] = {}
        aliases = {a.alias: a.mapping for a in rule.aliases.aliases.values()} if rule.aliases else {}
        for ref in rule.rules or []:
            target = ref_names[ref.reference]
            fields = []
            for name in names:
                alias = aliases.get(name)
                if alias is not None:
                    mapped = {str(k.reference): v for k, v in alias.items()}
                    fields.append(mapped.get(ref.reference, name))
                else:
                    fields.append(name)
            group_fields[target] = fields
        value_fields: dict[str, str] = {}
        cond = rule.condition
        if isinstance(cond, SigmaCorrelationCondition) and cond.fieldref is not None:
            fref = cond.fieldref if isinstance(cond.fieldref, str) else cond.fieldref[0]
            for ref in rule.rules or []:
                alias = aliases.get(fref)
                value_fields[ref_names[ref.reference]] = (
                    {str(k.reference): v for k, v in alias.items()}.get(ref.reference, fref) if alias else fref
                )
        if rule.type in (SigmaCorrelationType.VALUE_PERCENTILE, SigmaCorrelationType.VALUE_MEDIAN):
            raise UnsupportedCorrelation(f"correlation type {rule.type.name.lower()}")
        return cls(key=key, type=rule.type, refs=refs, group_names=names, group_fields=group_fields,
                   span=float(rule.timespan.seconds), condition=cond, value_fields=value_fields,
                   generate=bool(rule.generate), ref_names=ref_names)


class CorrelationEngine:
    """Sliding-window state for many correlation rules, fed with base-rule matches in time order."""

    def __init__(self, specs: Sequence[CorrelationSpec]) -> None:
        self.specs = list(specs)
        self._subscribers: dict[str, list[CorrelationSpec]] = {}
        for spec in self.specs:
            for ref in dict.fromkeys(spec.refs):
                self._subscribers.setdefault(ref, []).append(spec)
        self._state: dict[tuple[str, tuple[str, ...]], _GroupState] = {}
        self._seq = 0
        #: rule keys whose matches some correlation consumes
        self.consumed = frozenset(self._subscribers)

    def feed(self, rule_key: str, ts: float, doc: Mapping[str, Any], evidence: tuple[str, ...]) -> list[Firing]:
        """A match of ``rule_key`` at ``ts``; returns every firing it causes, at all levels."""
        out: list[Firing] = []
        pending = [(rule_key, ts, doc, evidence)]
        while pending:
            key, t, d, ev = pending.pop()
            for spec in self._subscribers.get(key, ()):
                firing = self._update(spec, key, t, d, ev)
                if firing is not None:
                    out.append(firing)
                    if firing.rule_key in self._subscribers:
                        pending.append((firing.rule_key, firing.ts, firing.group_doc(), firing.evidence))
        return out

    # -- one rule, one event ----------------------------------------------------------------
    def _update(self, spec: CorrelationSpec, ref: str, ts: float, doc: Mapping[str, Any],
                evidence: tuple[str, ...]) -> Firing | None:
        group_vals: list[str] = []
        for fname in spec.group_fields.get(ref, spec.group_names):
            v = _value(doc, fname)
            if v is None:
                return None  # like an aggregation: events without the group field are not counted
            group_vals.append(v)
        value: Any = None
        if spec.value_fields:
            value = _value(doc, spec.value_fields.get(ref, ""))
            if value is None:
                return None
            if spec.type in (SigmaCorrelationType.VALUE_SUM, SigmaCorrelationType.VALUE_AVG):
                try:
                    value = float(value)
                except ValueError:
                    return None
        gkey = tuple(group_vals)
        state = self._state.get((spec.key, gkey))
        if state is None:
            state = self._state[(spec.key, gkey)] = _GroupState()
        self._seq += 1
        entry = _Entry(ts, self._seq, ref, value, evidence)
        state.entries.append(entry)
        if spec.type is SigmaCorrelationType.VALUE_COUNT:
            state.values[value] += 1
        elif spec.type in (SigmaCorrelationType.VALUE_SUM, SigmaCorrelationType.VALUE_AVG):
            state.total += value
        self._expire(spec, state, ts)
        measured = self._measure(spec, state)
        if measured is None:
            return None
        window = state.entries
        start = window[0].ts
        fresh: list[str] = []
        for e in window:
            if e.seq > state.reported_seq:
                fresh.extend(e.evidence)
        state.reported_seq = self._seq
        return Firing(spec.key, ts, start, tuple(zip(spec.group_names, group_vals, strict=True)),
                      tuple(dict.fromkeys(fresh))[:MAX_EVIDENCE], measured)

    def _expire(self, spec: CorrelationSpec, state: _GroupState, now: float) -> None:
        horizon = now - spec.span
        entries = state.entries
        while entries and entries[0].ts < horizon:
            old = entries.popleft()
            if spec.type is SigmaCorrelationType.VALUE_COUNT:
                state.values[old.value] -= 1
                if state.values[old.value] <= 0:
                    del state.values[old.value]
            elif spec.type in (SigmaCorrelationType.VALUE_SUM, SigmaCorrelationType.VALUE_AVG):
                state.total -= old.value

    def _measure(self, spec: CorrelationSpec, state: _GroupState) -> float | None:
        """The figure the condition compares, or None when the condition does not hold."""
        t = spec.type
        cond = spec.condition
        if t in (SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED):
            return self._temporal(spec, state)
        assert isinstance(cond, SigmaCorrelationCondition)
        if t is SigmaCorrelationType.EVENT_COUNT:
            n: float = len(state.entries)
        elif t is SigmaCorrelationType.VALUE_COUNT:
            n = len(state.values)
        elif t is SigmaCorrelationType.VALUE_SUM:
            n = state.total
        elif t is SigmaCorrelationType.VALUE_AVG:
            n = state.total / len(state.entries) if state.entries else 0.0
        else:  # pragma: no cover - rejected in from_rule
            return None
        return n if _OPS[cond.op](n, cond.count) else None

    def _temporal(self, spec: CorrelationSpec, state: _GroupState) -> float | None:
        present = {e.rule for e in state.entries}
        cond = spec.condition
        if spec.type is SigmaCorrelationType.TEMPORAL_ORDERED:
            last = float("-inf")
            for ref in spec.refs:
                nxt = next((e.ts for e in state.entries if e.rule == ref and e.ts >= last), None)
                if nxt is None:
                    return None
                last = nxt
            # the window must end on the last rule of the sequence (it fires when the sequence completes)
            return float(len(spec.refs)) if state.entries[-1].rule == spec.refs[-1] else None
        if isinstance(cond, SigmaExtendedCorrelationCondition):
            return float(len(present)) if _eval_extended(cond.parsed, present, spec.ref_names) else None
        n = float(len(present))
        return n if _OPS[cond.op](n, cond.count) else None


def _eval_extended(node: Any, present: set[str], names: Mapping[str, str]) -> bool:
    if isinstance(node, SigmaRuleReference):
        return names.get(node.reference, node.reference) in present
    if isinstance(node, CorrelationConditionAND):
        return all(_eval_extended(a, present, names) for a in node.args)
    if isinstance(node, CorrelationConditionOR):
        return any(_eval_extended(a, present, names) for a in node.args)
    if isinstance(node, CorrelationConditionNOT):
        return not _eval_extended(node.args[0], present, names)
    raise UnsupportedCorrelation(f"extended condition element {type(node).__name__}")


def _value(doc: Mapping[str, Any], name: str) -> str | None:
    v = doc.get(name)
    if v is None:
        return None
    if isinstance(v, list):
        v = v[0] if v else None
        if v is None:
            return None
    return str(v)
