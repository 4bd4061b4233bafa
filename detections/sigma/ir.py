"""A compiled rule's condition as plain data: what the matcher compiles and the cache stores.

After the processing pipeline, a rule's condition is a tree of pySigma objects (``ConditionAND``,
``ConditionFieldEqualsValueExpression`` with ``SigmaString``, ``SigmaNumber``...). ``tree_out``
writes that tree as JSON values (lists, dicts, strings, numbers; the form is described in
:mod:`detections.sigma.matcher`), and the matcher builds its closures from that form, so its
code is the same whether a rule comes from its file or from the compiled-rule cache, a rule
from the cache needs no pySigma object at all (nor pySigma's condition parser, pyparsing, to
be imported), and loading the cache executes nothing but ``json`` (no pickle: a cache file is
data). ``tree_in`` makes the pySigma objects again, for what walks them (the Elasticsearch
conversion).

A value type or condition element the matcher does not know is written as ``{"t": "?", "type":
class name}`` / ``{"?": class name}``, so compiling it fails with the same reason as before the
form existed (such a rule is a compile problem, never in the cache).

Hand-written because pySigma has no serialisation of processed conditions (``to_dict`` gives
the rule as written, before the pipeline, and does not round-trip escapes exactly).
"""

from __future__ import annotations

from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

Json = Any


class NotSerialisable(ValueError):
    """A construct this form does not cover (a string part pySigma 1.x does not make; an unknown tag read back)."""


# -- values ------------------------------------------------------------------------------
_SPECIAL_OUT = {SpecialChars.WILDCARD_MULTI: ["*"], SpecialChars.WILDCARD_SINGLE: ["?"]}
_SPECIAL_IN = {"*": SpecialChars.WILDCARD_MULTI, "?": SpecialChars.WILDCARD_SINGLE}


def _parts_out(s: SigmaString) -> list[Json]:
    out: list[Json] = []
    for p in s.s:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, Placeholder):
            out.append(["p", p.name])
        elif p in _SPECIAL_OUT:
            out.append(_SPECIAL_OUT[p])
        else:
            raise NotSerialisable(f"string part {p!r}")
    return out


def _parts_in(parts: list[Json], cls: type[SigmaString] = SigmaString) -> SigmaString:
    s = cls.__new__(cls)
    s.original = ""
    s.s = list(p if isinstance(p, str) else (Placeholder(p[1]) if p[0] == "p" else _SPECIAL_IN[p[0]])
                for p in parts)
    return s


def value_out(v: Any) -> Json:
    """One detection value as JSON (subclasses before their bases)."""
    if isinstance(v, SigmaCasedString):
        return {"t": "cs", "s": _parts_out(v)}
    if isinstance(v, SigmaString):
        return {"t": "s", "s": _parts_out(v)}
    if isinstance(v, SigmaTimestampPart):
        return {"t": "tp", "part": v.timestamp_part.name, "n": v.number}
    if isinstance(v, SigmaBool):
        return {"t": "b", "v": v.boolean}
    if isinstance(v, SigmaNumber):
        return {"t": "n", "n": v.number}
    if isinstance(v, SigmaNull):
        return {"t": "null"}
    if isinstance(v, SigmaExists):
        return {"t": "exists", "v": v.exists}
    if isinstance(v, SigmaRegularExpression):
        if not isinstance(v.regexp, SigmaString):  # pySigma keeps a YAML number as it came
            raise NotSerialisable(f"a regular expression must be text, not {v.regexp!r}")
        return {"t": "re", "r": _parts_out(v.regexp), "f": sorted(f.name for f in v.flags)}
    if isinstance(v, SigmaCIDRExpression):
        return {"t": "cidr", "c": v.cidr}
    if isinstance(v, SigmaCompareExpression):
        return {"t": "cmp", "n": v.number.number, "op": v.op.name}
    if isinstance(v, SigmaFieldReference):
        return {"t": "ref", "f": v.field, "sw": v.starts_with, "ew": v.ends_with}
    if isinstance(v, SigmaExpansion):
        return {"t": "exp", "v": [value_out(x) for x in v.values]}
    return {"t": "?", "type": type(v).__name__}  # the matcher says it does not support it


def _number(n: Any) -> SigmaNumber:
    return SigmaNumber(n)


def value_in(j: Json) -> Any:
    t = j["t"]
    if t == "s":
        return _parts_in(j["s"])
    if t == "cs":
        return _parts_in(j["s"], SigmaCasedString)
    if t == "tp":
        return SigmaTimestampPart(TimestampPart[j["part"]], j["n"])
    if t == "b":
        return SigmaBool(j["v"])
    if t == "n":
        return _number(j["n"])
    if t == "null":
        return SigmaNull()
    if t == "exists":
        return SigmaExists(j["v"])
    if t == "re":
        rx = SigmaRegularExpression.__new__(SigmaRegularExpression)
        rx.regexp = _parts_in(j["r"])
        rx.flags = {SigmaRegularExpressionFlag[f] for f in j["f"]}
        return rx
    if t == "cidr":
        return SigmaCIDRExpression(j["c"])
    if t == "cmp":
        return SigmaCompareExpression(_number(j["n"]), CompareOperators[j["op"]])
    if t == "ref":
        return SigmaFieldReference(j["f"], j["sw"], j["ew"])
    if t == "exp":
        return SigmaExpansion([value_in(x) for x in j["v"]])
    raise NotSerialisable(f"unknown value tag {t!r}")


# -- condition trees ---------------------------------------------------------------------
def tree_out(node: Any) -> Json:
    """A processed condition tree as JSON."""
    if isinstance(node, ConditionAND):
        return {"and": [tree_out(a) for a in node.args]}
    if isinstance(node, ConditionOR):
        return {"or": [tree_out(a) for a in node.args]}
    if isinstance(node, ConditionNOT):
        return {"not": tree_out(node.args[0])}
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return {"f": node.field, "v": value_out(node.value)}
    if isinstance(node, ConditionValueExpression):
        return {"k": value_out(node.value)}
    return {"?": type(node).__name__}  # the matcher says it does not support it


def tree_in(j: Json) -> Any:
    if "and" in j:
        return ConditionAND([tree_in(a) for a in j["and"]])
    if "or" in j:
        return ConditionOR([tree_in(a) for a in j["or"]])
    if "not" in j:
        return ConditionNOT([tree_in(j["not"])])
    if "f" in j:
        return ConditionFieldEqualsValueExpression(j["f"], value_in(j["v"]))
    if "k" in j:
        return ConditionValueExpression(value_in(j["k"]))
    raise NotSerialisable(f"unknown condition node {sorted(j)!r}")
