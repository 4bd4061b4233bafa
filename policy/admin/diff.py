"""``soc policy diff A B``: what changed between two policy sets, rule by rule and field by field.

Rules are matched by id (``policy/rule``); a rule that moved to another file or line but
says the same thing is unchanged. For what the change does to real traffic, use what-if.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from policy.language import PolicySet, Rule, load_policy_set

_IGNORED = ("file", "line")


@dataclass(frozen=True, slots=True)
class RuleChange:
    rule: str
    change: str  # added, removed, changed
    fields: tuple[tuple[str, Any, Any], ...] = ()
    where: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "change": self.change, "where": self.where,
                "fields": {name: {"old": old, "new": new} for name, old, new in self.fields}}


def _comparable(rule: Rule) -> dict[str, Any]:
    data = asdict(rule)
    for k in _IGNORED:
        data.pop(k, None)
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def diff_sets(a: PolicySet, b: PolicySet) -> list[RuleChange]:
    old = {r.id: r for r in a.rules}
    new = {r.id: r for r in b.rules}
    out: list[RuleChange] = []
    for rid in sorted(old.keys() - new.keys()):
        out.append(RuleChange(rid, "removed", where=old[rid].where))
    for rid in sorted(new.keys() - old.keys()):
        out.append(RuleChange(rid, "added", where=new[rid].where))
    for rid in sorted(old.keys() & new.keys()):
        ca, cb = _comparable(old[rid]), _comparable(new[rid])
        changed = tuple((k, _plain(ca[k]), _plain(cb[k])) for k in ca if ca[k] != cb[k])
        if changed:
            out.append(RuleChange(rid, "changed", changed, new[rid].where))
    return out


def diff_paths(a: list[str | Path], b: list[str | Path]) -> list[RuleChange]:
    return diff_sets(load_policy_set(a), load_policy_set(b))
