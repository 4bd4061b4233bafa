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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pySigma only where a spec is made from a rule: a spec from the compiled-rule
    # cache is plain data, so a scan from the cache imports none of pySigma's rule model and YAML
    from sigma.correlations import SigmaCorrelationRule

#: correlation types, by the names Sigma's ``type:`` uses
EVENT_COUNT, VALUE_COUNT, VALUE_SUM, VALUE_AVG = "event_count", "value_count", "value_sum", "value_avg"
TEMPORAL, TEMPORAL_ORDERED = "temporal", "temporal_ordered"
_TYPES = frozenset({EVENT_COUNT, VALUE_COUNT, VALUE_SUM, VALUE_AVG, TEMPORAL, TEMPORAL_ORDERED})
_OPS = {
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b,
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


@dataclass(frozen=True, slots=True)
class Threshold:
    """A correlation condition such as ``gte: 10``: ``op`` one of lt, lte, gt, gte, eq, neq."""

    op: str
    count: int


#: an extended (temporal) condition: ``("ref", name)``, ``("not", e)``, ``("and"|"or", e1, e2, ...)``
Expr = tuple[Any, ...]


@dataclass
class CorrelationSpec:
    """What the engine needs of a correlation rule, as plain data of our own.

    Made from pySigma's rule by :meth:`from_rule` (pipeline applied); written to and read from
    the compiled-rule cache by :meth:`as_json` / :meth:`from_json`, so a set from the cache
    needs neither the rule's file nor pySigma's rule model.
    """

    key: str
    type: str  # EVENT_COUNT, VALUE_COUNT, ...
    refs: list[str]  # keys of referenced rules, in rule order
    group_names: list[str]
    group_fields: dict[str, list[str]]  # ref key -> field per group name
    span: float
    condition: Threshold | Expr
    value_fields: dict[str, str]  # ref key -> field counted / summed
    generate: bool = False
    ref_names: dict[str, str] = field(default_factory=dict)  # reference text -> key

    @classmethod
    def from_rule(cls, rule: SigmaCorrelationRule, key: str, targets: Sequence[str]) -> CorrelationSpec:
        """``rule`` with the pipeline applied; ``targets``: our key of each referenced rule, in order."""
        from sigma.correlations import SigmaCorrelationCondition

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
        condition: Threshold | Expr
        if isinstance(cond, SigmaCorrelationCondition):
            if cond.fieldref is not None:
                fref = cond.fieldref if isinstance(cond.fieldref, str) else cond.fieldref[0]
                for ref in rule.rules or []:
                    alias = aliases.get(fref)
                    value_fields[ref_names[ref.reference]] = (
                        {str(k.reference): v for k, v in alias.items()}.get(ref.reference, fref) if alias else fref
                    )
            condition = Threshold(cond.op.name.lower(), cond.count)
        else:
            condition = _expr(cond.parsed)
        kind = rule.type.name.lower()
        if kind not in _TYPES:
            raise UnsupportedCorrelation(f"correlation type {kind}")
        return cls(key=key, type=kind, refs=refs, group_names=names, group_fields=group_fields,
                   span=float(rule.timespan.seconds), condition=condition, value_fields=value_fields,
                   generate=bool(rule.generate), ref_names=ref_names)

    def as_json(self) -> dict[str, Any]:
        cond = self.condition
        return {"key": self.key, "type": self.type, "refs": self.refs, "group_names": self.group_names,
                "group_fields": self.group_fields, "span": self.span, "value_fields": self.value_fields,
                "condition": {"op": cond.op, "count": cond.count} if isinstance(cond, Threshold) else {"expr": cond},
                "generate": self.generate, "ref_names": self.ref_names}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CorrelationSpec:
        """Back from :meth:`as_json`; raises ``ValueError`` / ``KeyError`` / ``TypeError`` on anything odd."""
        cond = d["condition"]
        condition = Threshold(str(cond["op"]), int(cond["count"])) if "op" in cond else _expr_in(cond["expr"])
        if d["type"] not in _TYPES or (isinstance(condition, Threshold) and condition.op not in _OPS):
            raise ValueError("unknown correlation type or operator")
        return cls(key=str(d["key"]), type=d["type"], refs=[str(r) for r in d["refs"]],
                   group_names=[str(n) for n in d["group_names"]],
                   group_fields={str(k): [str(f) for f in v] for k, v in d["group_fields"].items()},
                   span=float(d["span"]), condition=condition,
                   value_fields={str(k): str(v) for k, v in d["value_fields"].items()},
                   generate=bool(d["generate"]), ref_names={str(k): str(v) for k, v in d["ref_names"].items()})


def _expr(node: Any) -> Expr:
    """pySigma's parsed extended condition as an :data:`Expr`."""
    from sigma.correlations import (
        CorrelationConditionAND,
        CorrelationConditionNOT,
        CorrelationConditionOR,
        SigmaRuleReference,
    )

    if isinstance(node, SigmaRuleReference):
        return ("ref", node.reference)
    if isinstance(node, CorrelationConditionNOT):
        return ("not", _expr(node.args[0]))
    for kind, name in ((CorrelationConditionAND, "and"), (CorrelationConditionOR, "or")):
        if isinstance(node, kind):
            return (name, *(_expr(a) for a in node.args))
    raise UnsupportedCorrelation(f"extended condition element {type(node).__name__}")


def _expr_in(node: Any) -> Expr:
    """An :data:`Expr` back from JSON (lists), checked."""
    if not isinstance(node, list) or not node:
        raise ValueError("not a condition")
    if node[0] == "ref" and len(node) == 2:
        return ("ref", str(node[1]))
    if node[0] == "not" and len(node) == 2:
        return ("not", _expr_in(node[1]))
    if node[0] in ("and", "or") and len(node) > 1:
        return (node[0], *(_expr_in(a) for a in node[1:]))
    raise ValueError("not a condition")


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
            if spec.type in (VALUE_SUM, VALUE_AVG):
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
        if spec.type == VALUE_COUNT:
            state.values[value] += 1
        elif spec.type in (VALUE_SUM, VALUE_AVG):
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
            if spec.type == VALUE_COUNT:
                state.values[old.value] -= 1
                if state.values[old.value] <= 0:
                    del state.values[old.value]
            elif spec.type in (VALUE_SUM, VALUE_AVG):
                state.total -= old.value

    def _measure(self, spec: CorrelationSpec, state: _GroupState) -> float | None:
        """The figure the condition compares, or None when the condition does not hold."""
        t = spec.type
        cond = spec.condition
        if t in (TEMPORAL, TEMPORAL_ORDERED):
            return self._temporal(spec, state)
        assert isinstance(cond, Threshold)
        if t == EVENT_COUNT:
            n: float = len(state.entries)
        elif t == VALUE_COUNT:
            n = len(state.values)
        elif t == VALUE_SUM:
            n = state.total
        elif t == VALUE_AVG:
            n = state.total / len(state.entries) if state.entries else 0.0
        else:  # pragma: no cover - rejected in from_rule / from_json
            return None
        return n if _OPS[cond.op](n, cond.count) else None

    def _temporal(self, spec: CorrelationSpec, state: _GroupState) -> float | None:
        present = {e.rule for e in state.entries}
        cond = spec.condition
        if spec.type == TEMPORAL_ORDERED:
            last = float("-inf")
            for ref in spec.refs:
                nxt = next((e.ts for e in state.entries if e.rule == ref and e.ts >= last), None)
                if nxt is None:
                    return None
                last = nxt
            # the window must end on the last rule of the sequence (it fires when the sequence completes)
            return float(len(spec.refs)) if state.entries[-1].rule == spec.refs[-1] else None
        if not isinstance(cond, Threshold):
            return float(len(present)) if _eval_extended(cond, present, spec.ref_names) else None
        n = float(len(present))
        return n if _OPS[cond.op](n, cond.count) else None


def _eval_extended(node: Expr, present: set[str], names: Mapping[str, str]) -> bool:
    kind = node[0]
    if kind == "ref":
        return names.get(node[1], node[1]) in present
    if kind == "and":
        return all(_eval_extended(a, present, names) for a in node[1:])
    if kind == "or":
        return any(_eval_extended(a, present, names) for a in node[1:])
    return not _eval_extended(node[1], present, names)  # "not"


def _value(doc: Mapping[str, Any], name: str) -> str | None:
    v = doc.get(name)
    if v is None:
        return None
    if isinstance(v, list):
        v = v[0] if v else None
        if v is None:
            return None
    return str(v)
