"""The embedded Sigma engine: rules compiled once to Python predicates over flat ECS dicts.

pySigma parses the rule and the processing pipeline maps it to our fields; the resulting
condition tree, in its plain form (dicts and lists, :mod:`detections.sigma.ir`: the same form
the compiled-rule cache keeps, so a rule from the cache is compiled without pySigma), becomes
closures (no SQL, no per-event interpretation of the tree). Each rule is indexed by a field every match must carry with one of a few exact
values (``event.code``, ``event.dataset``, ``winlog.channel``...), found by walking the
tree for mandatory equalities; an event is then tried only against the rules filed under
its own values of those fields, plus the few rules with no such constraint.

Hand-written because no library evaluates Sigma in process at this speed: pySigma only
converts to query languages. Semantics follow the Sigma specification: strings compare
case-insensitively unless ``|cased``, ``*`` and ``?`` are wildcards, a list of values is
OR, ``|all`` is AND, a keyword (value without field) is a substring of any field, ``null``
matches a missing or empty field, a multi-valued field matches if any value does.

Compiled with mypyc when the project is built (``native.py``, which runs this source instead
when the build is stale). Compiled, an annotation is checked at run time: a value taken from an
event is ``Any`` until its type is tested (events come from outside and may hold anything), and
``str.lower`` is called as ``_lower`` (see there). ``tests/test_sigma_native.py`` compares both forms.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

if TYPE_CHECKING:  # the rule model and pipelines are needed to compile from a rule, not from the cache
    from sigma.processing.pipeline import ProcessingPipeline
    from sigma.rule import SigmaRule

Doc = Mapping[str, Any]
_T = TypeVar("_T")

#: ``str.lower``, called as a function and never written ``s.lower()``: mypyc, which compiles this
#: module (``native.py``), has its own ``lower`` for values typed ``str`` that maps each character
#: alone, so a final capital sigma lowers to U+03C3 there and to the final form U+03C2 in Python
#: (a rule's "ΣΊΣΥΦΟΣ" missed the event's "σίσυφος", compiled only); the function called here is
#: CPython's in both forms
_lower = str.lower

#: Fields a rule may be indexed by, most selective first.
INDEX_FIELDS: tuple[str, ...] = ("event.code", "event.dataset", "winlog.channel", "event.action", "event.category")

_MISSING = object()
_WINDATA = ("winlog.event_data.", "winlog.user_data.")


class UnsupportedRule(ValueError):
    """A rule the embedded engine cannot evaluate (the reason says which construct)."""


#: value types a flat ECS document holds (anything else may nest: see ``EventView.nested``)
_FLAT_TYPES = frozenset({str, int, float, bool, list, type(None)})


class _Strings(dict):  # type: ignore[type-arg]
    """A document's fields as strings, by Sigma name, each computed on its first lookup.

    ``__missing__`` computes; a hit is one C-level subscript. It holds the document, never the
    view: no reference cycle, so a view is freed by reference counting as soon as it is dropped
    (scans and detection runs pause the cyclic collector).
    """

    __slots__ = ("_aliases", "_nested", "doc")

    def __init__(self, doc: Doc) -> None:
        super().__init__()
        self.doc = doc
        self._nested: bool | None = None
        self._aliases: dict[str, str] | None = None

    def __missing__(self, name: str) -> tuple[str, ...] | None:
        value = self.raw(name)
        out = None if value is None else _as_strings(value)
        self[name] = out
        return out

    @property
    def nested(self) -> bool:
        if self._nested is None:
            values = self.doc.values()
            if _FLAT_TYPES.issuperset(map(type, values)):  # one C-level pass for the usual case
                self._nested = False
            else:
                self._nested = any(type(v) is dict or (not isinstance(v, str | int | float | list) and isinstance(v, Mapping))
                                   for v in values if v is not None)
        return self._nested

    @property
    def aliases(self) -> dict[str, str]:
        if self._aliases is None:
            out: dict[str, str] = {}
            try:
                keys = "\n".join(self.doc)
            except TypeError:  # a key that is not text: walk them all
                keys = " "
            if " " in keys or _WINDATA[1] in keys:  # the usual event has neither: no walk
                doc: Any = self.doc  # compiled, a walk of a Mapping[str, ...] checks that each key is a str
                for key in doc:
                    if isinstance(key, str) and (" " in key or key.startswith(_WINDATA[1])) and key.startswith(_WINDATA):
                        alias = _WINDATA[0] + key.rsplit(".", 1)[-1].replace(" ", "")
                        if alias != key and alias not in self.doc:
                            out.setdefault(alias, key)
            self._aliases = out
        return self._aliases

    def raw(self, name: str) -> Any:
        value = self.doc.get(name, _MISSING)
        if value is _MISSING:
            if name.startswith("winlog.event_data."):
                key = self.aliases.get(name)
                if key is not None:
                    value = self.doc.get(key, _MISSING)
            if value is _MISSING and "." in name and self.nested:
                value = _nested(self.doc, name)
        return None if value is _MISSING else value


class _Lowered(dict):  # type: ignore[type-arg]
    """The same fields lower-cased, each computed on its first lookup (from ``_Strings``)."""

    __slots__ = ("strs",)

    def __init__(self, strs: _Strings) -> None:
        super().__init__()
        self.strs = strs

    def __missing__(self, name: str) -> tuple[str, ...] | None:
        s = self.strs[name]
        out = None if s is None else tuple(_lower(v) for v in s)
        self[name] = out
        return out


class EventView:
    """One event seen by many predicates: values are normalised once, on first use.

    ``lower[name]`` / ``strs[name]`` are the field's values as strings (lower-cased or as
    they are), ``None`` when the event has no such field; the matcher's index fills
    ``lower`` for the fields it walks, so the predicates of the candidate rules find them done.
    """

    __slots__ = ("_all", "doc", "lower", "strs")

    def __init__(self, doc: Doc, flat: bool = False) -> None:
        """``flat``: the caller knows no value is an object (a reader that makes only flat events):
        the check of every value's type is skipped."""
        self.doc = doc
        self.strs = _Strings(doc)
        if flat:
            self.strs._nested = False
        self.lower = _Lowered(self.strs)
        self._all: tuple[str, ...] | None = None

    @property
    def nested(self) -> bool:
        """Whether the document nests objects (flat ECS dicts, the usual case, do not)."""
        return self.strs.nested

    @property
    def aliases(self) -> dict[str, str]:
        """Sigma names of Windows data fields stored under another name: ``winlog.event_data.ThreatName``
        for ``winlog.event_data.Threat Name`` (Defender puts spaces in names), and UserData fields
        (``winlog.user_data.<Wrapper>.Operation``) as ``winlog.event_data.Operation``, as Winlogbeat,
        Chainsaw and Zircolite flatten them."""
        return self.strs.aliases

    def raw(self, name: str) -> Any:
        return self.strs.raw(name)

    def lowers(self, name: str) -> tuple[str, ...] | None:
        return self.lower[name]  # type: ignore[no-any-return]

    def all_lower(self) -> tuple[str, ...]:
        """Every value of the event, lower-cased: what a Sigma keyword searches."""
        if self._all is None:
            vals: list[str] = []
            for value in self.doc.values():
                if type(value) is str:
                    vals.append(_lower(value))
                elif value is not None:
                    vals.extend([_lower(v) for v in _as_strings(value)])
            self._all = tuple(vals)
        return self._all


def _nested(doc: Doc, name: str) -> Any:
    """``a.b.c`` in a document that nests (``{"a": {"b.c": 1}}`` or ``{"a": {"b": {"c": 1}}}``)."""
    head, _, rest = name.partition(".")
    sub = doc.get(head, _MISSING)
    if isinstance(sub, Mapping):
        value = sub.get(rest, _MISSING)
        if value is _MISSING and "." in rest:
            return _nested(sub, rest)
        return value
    return _MISSING


def _as_strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, int | float):
        return (_num_str(value),)
    if isinstance(value, list | tuple):
        out: list[str] = []
        for v in value:
            if v is not None and not isinstance(v, dict | list):
                out.extend(_as_strings(v))
        return tuple(out)
    if isinstance(value, dict):
        return ()
    return (str(value),)


def _num_str(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


Predicate = Callable[[EventView], bool]


# -- the plain form of a processed condition ---------------------------------------------
#: A processed condition tree as plain data (what the compiled-rule cache stores, and what the
#: predicates are built from, whether the rule comes from its file or from the cache):
#: ``{"and": [node...]}``, ``{"or": [node...]}``, ``{"not": node}``, ``{"f": field, "v": value}``
#: (a field compared to a value), ``{"k": value}`` (a keyword). A value is ``{"t": tag, ...}``:
#: ``s`` / ``cs`` (string / cased string, ``"s"``: its parts), ``tp`` (timestamp part: ``part``,
#: ``n``), ``b`` (``v``), ``n`` (number ``n``), ``null``, ``exists`` (``v``), ``re`` (parts ``r``,
#: flag names ``f``), ``cidr`` (``c``), ``cmp`` (``n``, operator name ``op``), ``ref`` (field ``f``,
#: ``sw``, ``ew``), ``exp`` (values ``v``). A string part is text, ``["*"]``, ``["?"]`` (wildcards)
#: or ``["p", name]`` (a placeholder). :mod:`detections.sigma.ir` converts pySigma's objects.
Node = dict[str, Any]
Value = dict[str, Any]
Parts = list[Any]
_STAR, _QMARK = ["*"], ["?"]


class _Wild:
    """A wildcard of a normalised string (placeholders count as ``*``)."""

    __slots__ = ("regex",)

    def __init__(self, regex: str) -> None:
        self.regex = regex


_MULTI, _SINGLE = _Wild(".*"), _Wild(".")


def _wild(parts: Parts) -> list[Any]:
    """The parts with each wildcard or placeholder as ``_MULTI`` / ``_SINGLE``, empty texts dropped."""
    out: list[Any] = []
    for p in parts:
        if p.__class__ is str:
            if p:
                out.append(p)
        else:
            out.append(_SINGLE if p == _QMARK else _MULTI)
    return out


def plain_text(parts: Parts) -> str:
    """The string as pySigma writes it (``str(SigmaString)``): ``*`` and ``?`` of the text
    escaped, wildcards as ``*`` / ``?``, placeholders as ``%name%``."""
    out = []
    for p in parts:
        if p.__class__ is str:
            out.append(p.replace("*", "\\*").replace("?", "\\?"))
        elif p in (_STAR, _QMARK):
            out.append(p[0])
        else:
            out.append(f"%{p[1]}%")
    return "".join(out)


def _special(parts: Parts) -> bool:
    """Whether the string has a wildcard (pySigma's ``contains_special``: placeholders are not)."""
    return any(p in (_STAR, _QMARK) for p in parts if p.__class__ is list)


#: pySigma's class of each value tag (for the reasons of unsupported rules; ``?``: a value type
#: the matcher does not know, its class in ``type``)
_TYPE_NAMES = {"s": "SigmaString", "cs": "SigmaCasedString", "tp": "SigmaTimestampPart", "b": "SigmaBool",
               "n": "SigmaNumber", "null": "SigmaNull", "exists": "SigmaExists", "re": "SigmaRegularExpression",
               "cidr": "SigmaCIDRExpression", "cmp": "SigmaCompareExpression", "ref": "SigmaFieldReference",
               "exp": "SigmaExpansion"}


def _type_name(value: Value) -> str:
    tag = str(value.get("t"))
    return str(value.get("type", tag)) if tag == "?" else _TYPE_NAMES.get(tag, tag)


# -- strings -----------------------------------------------------------------------------
@dataclass
class _StringSet:
    """Several string patterns on one field, OR-ed, evaluated in one pass per value."""

    equals: set[str] = field(default_factory=set)
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    contains: list[str] = field(default_factory=list)
    regexes: list[str] = field(default_factory=list)
    anything: bool = False

    def add(self, raw: Parts, *, keyword: bool = False) -> None:
        if not keyword:  # the usual shapes first: value, *value*, *value, value*
            n = len(raw)
            if n == 1 and raw[0].__class__ is str:
                self.equals.add(_lower(raw[0]))
                return
            if n == 3 and raw[0] == _STAR and raw[2] == _STAR and raw[1].__class__ is str and raw[1]:
                self.contains.append(_lower(raw[1]))
                return
            if n == 2 and raw[0] == _STAR and raw[1].__class__ is str and raw[1]:
                self.suffixes.append(_lower(raw[1]))
                return
            if n == 2 and raw[1] == _STAR and raw[0].__class__ is str and raw[0]:
                self.prefixes.append(_lower(raw[0]))
                return
        parts = _wild(raw)
        if keyword:  # a keyword is a substring of some value
            if not parts or parts[0] is not _MULTI:
                parts.insert(0, _MULTI)
            if parts[-1] is not _MULTI:
                parts.append(_MULTI)
        texts = [p for p in parts if isinstance(p, str)]
        if len(texts) == len(parts):
            self.equals.add(_lower("".join(texts)))
        elif all(p is _MULTI for p in parts):
            self.anything = True
        elif len(parts) == 2 and parts[1] is _MULTI and isinstance(parts[0], str):
            self.prefixes.append(_lower(parts[0]))
        elif len(parts) == 2 and parts[0] is _MULTI and isinstance(parts[1], str):
            self.suffixes.append(_lower(parts[1]))
        elif len(parts) == 3 and parts[0] is _MULTI and parts[2] is _MULTI and isinstance(parts[1], str):
            self.contains.append(_lower(parts[1]))
        else:
            self.regexes.append(_wildcard_regex(parts))

    def compile(self) -> Callable[[str], bool]:
        equals = frozenset(self.equals)
        prefixes = tuple(self.prefixes)
        suffixes = tuple(self.suffixes)
        contains = tuple(self.contains)
        rx_match = (_lazy_regex("|".join(f"(?:{p})" for p in self.regexes), re.DOTALL, "fullmatch")
                    if self.regexes else None)
        if len(contains) > 3:  # one scan of the value instead of one per substring
            csearch: Callable[[str], Any] | None = _lazy_automaton(contains)
            contains = ()
        else:
            csearch = None
        if self.anything:
            return lambda v: True
        checks: list[Callable[[str], bool]] = []
        if equals:
            checks.append(equals.__contains__)
        if prefixes:
            checks.append(lambda v: v.startswith(prefixes))
        if suffixes:
            checks.append(lambda v: v.endswith(suffixes))
        if contains:
            if len(contains) == 1:
                c0 = contains[0]
                checks.append(lambda v: c0 in v)
            else:
                checks.append(lambda v: any(c in v for c in contains))
        if csearch is not None:
            checks.append(lambda v: csearch(v) is not None)
        if rx_match is not None:
            checks.append(lambda v: rx_match(v) is not None)
        if len(checks) == 1:
            return checks[0]
        return lambda v: any(c(v) for c in checks)


def _lazy_regex(pattern: str, flags: int, method: str) -> Callable[[str], Any]:
    """``re.compile(pattern, flags).<method>``, compiled on the first call.

    The patterns built here come from escaped literals, so they cannot fail to compile; most
    rules of a large set never meet an event their index lets through, and compiling every
    alternation up front (one SigmaHQ rule has ~800 hash values) was a quarter of a cold compile.
    """
    bound: Callable[[str], Any] | None = None

    def call(value: str) -> Any:
        nonlocal bound
        if bound is None:
            bound = getattr(re.compile(pattern, flags), method)
        return bound(value)

    return call


def _lazy_automaton(literals: Sequence[str]) -> Callable[[str], Any]:
    """Whether a value contains any of the literals (``None`` when not), in one Aho-Corasick pass.

    Built on the first call. A regular expression alternation of the same literals took a
    quarter of a warm ``soc scan`` to compile (SigmaHQ has rules with ~800 hash values).
    """
    search: Callable[[str], Any] | None = None

    def call(value: str) -> Any:
        nonlocal search
        if search is None:
            import ahocorasick

            automaton = ahocorasick.Automaton()
            for literal in set(literals):
                automaton.add_word(literal, literal)
            automaton.make_automaton()
            iterate = automaton.iter

            def first(v: str) -> Any:
                return next(iterate(v), None)

            search = first
        return search(value)

    return call


def _wildcard_regex(parts: Sequence[Any]) -> str:
    """A normalised string (``_wild``) as a lower-cased regular expression."""
    return "".join(p.regex if p.__class__ is _Wild else re.escape(_lower(p)) for p in parts)


def _cased_regex(parts: Parts) -> re.Pattern[str]:
    return re.compile("".join(p.regex if p.__class__ is _Wild else re.escape(p) for p in _wild(parts)), re.DOTALL)


# -- compiling the condition tree --------------------------------------------------------
def _any_value(field_name: str, test: Callable[[str], bool], *, lower: bool = True) -> Predicate:
    """Whether any value of the field passes ``test`` (lower-cased first unless ``lower=False``)."""
    if lower:
        def pred(ev: EventView) -> bool:
            vals = ev.lower[field_name]
            if not vals:
                return False
            if len(vals) == 1:
                return test(vals[0])
            for v in vals:  # noqa: SIM110 (a loop: no generator per call on the hot path)
                if test(v):
                    return True
            return False
    else:
        def pred(ev: EventView) -> bool:
            vals = ev.strs[field_name]
            if not vals:
                return False
            for v in vals:  # noqa: SIM110 (a loop: no generator per call on the hot path)
                if test(v):
                    return True
            return False

    return pred


def _to_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        if _lower(text[:2]) == "0x":
            try:
                return float(int(text, 16))
            except ValueError:
                return None
            except OverflowError:  # more hex digits than a float holds: larger than any, as "1e999" is
                return math.inf
        return None


#: pySigma's ``CompareOperators`` by name
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
    "NEQ": lambda a, b: a != b,
}

#: pySigma's ``TimestampPart`` by name
_PARTS: dict[str, Callable[[datetime], int]] = {
    "MINUTE": lambda d: d.minute,
    "HOUR": lambda d: d.hour,
    "DAY": lambda d: d.day,
    "WEEK": lambda d: d.isocalendar()[1],
    "MONTH": lambda d: d.month,
    "YEAR": lambda d: d.year,
}
#: pySigma's ``SigmaRegularExpressionFlag`` by name
_RE_FLAGS = {"IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL}


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _named(table: dict[str, _T], key: str, kind: str, field_name: str) -> _T:
    """``table[key]``: a name pySigma 1.x does not have (a cache not written by us) is an unsupported rule."""
    try:
        return table[key]
    except KeyError:
        name = f"{kind}({key})"
        raise UnsupportedRule(f"value type {name} on field {field_name}") from None


def _field_value(field_name: str, value: Value) -> Predicate:
    """One ``field: value`` comparison (value already transformed by modifiers)."""
    t = value["t"]
    if t == "s":
        matcher = _StringSet()
        matcher.add(value["s"])
        return _any_value(field_name, matcher.compile())
    if t == "cs":
        rx = _cased_regex(value["s"])
        return _any_value(field_name, lambda v: rx.fullmatch(v) is not None, lower=False)
    if t == "tp":
        part = _named(_PARTS, value["part"], "SigmaTimestampPart", field_name)
        want = value["n"]

        def ts_pred(ev: EventView) -> bool:
            for v in ev.strs[field_name] or ():
                d = _parse_time(v)
                if d is not None and part(d) == want:
                    return True
            return False

        return ts_pred
    if t == "b":
        want_s = "true" if value["v"] else "false"
        return _any_value(field_name, lambda v: v == want_s)
    if t == "n":
        num = float(value["n"])
        num_s = _num_str(value["n"])

        def num_test(v: str) -> bool:
            if v == num_s:
                return True
            n = _to_number(v)
            return n is not None and n == num

        return _any_value(field_name, num_test)
    if t == "null":
        def null_pred(ev: EventView) -> bool:
            vals = ev.strs[field_name]
            return not vals or all(v == "" for v in vals)

        return null_pred
    if t == "exists":
        want_exists = bool(value["v"])
        return lambda ev: (ev.raw(field_name) is not None) == want_exists
    if t == "re":
        flags = 0
        for flag in value["f"]:
            flags |= _named(_RE_FLAGS, flag, "SigmaRegularExpressionFlag", field_name)
        regexp = plain_text(value["r"])
        try:
            rx = re.compile(regexp, flags)
        except re.error as exc:
            raise UnsupportedRule(f"regular expression {regexp}: {exc}") from exc
        return _any_value(field_name, lambda v: rx.search(v) is not None, lower=False)
    if t == "cidr":
        try:
            net = ipaddress.ip_network(value["c"])
        except ValueError:
            name = f"SigmaCIDRExpression({value['c']})"
            raise UnsupportedRule(f"value type {name} on field {field_name}") from None

        def cidr_test(v: str) -> bool:
            try:
                return ipaddress.ip_address(v) in net
            except ValueError:
                return False

        return _any_value(field_name, cidr_test, lower=False)
    if t == "cmp":
        op = _named(_COMPARE, value["op"], "SigmaCompareExpression", field_name)
        target = float(value["n"])

        def cmp_test(v: str) -> bool:
            n = _to_number(v)
            return n is not None and op(n, target)

        return _any_value(field_name, cmp_test, lower=False)
    if t == "ref":
        other = value["f"]
        starts, ends = bool(value["sw"]), bool(value["ew"])

        def ref_pred(ev: EventView) -> bool:
            mine, theirs = ev.lower[field_name], ev.lower[other]
            if not mine or not theirs:
                return False
            for a in mine:
                for b in theirs:
                    if (starts and a.startswith(b)) or (ends and a.endswith(b)) or (not starts and not ends and a == b):
                        return True
            return False

        return ref_pred
    if t == "exp":
        return _any_of([_field_value(field_name, v) for v in value["v"]])
    name = _type_name(value)
    raise UnsupportedRule(f"value type {name} on field {field_name}")


def _keyword(value: Value) -> Predicate:
    t = value["t"]
    if t == "s" or t == "cs":
        matcher = _StringSet()
        matcher.add(value["s"], keyword=True)
        test = matcher.compile()
        return lambda ev: any(test(v) for v in ev.all_lower())
    if t == "n" or t == "tp":
        text = _num_str(value["n"])
        return lambda ev: any(text in v for v in ev.all_lower())
    if t == "re":
        rx = re.compile(plain_text(value["r"]), re.IGNORECASE)
        return lambda ev: any(rx.search(v) for v in ev.all_lower())
    if t == "exp":
        return _any_of([_keyword(v) for v in value["v"]])
    name = _type_name(value)
    raise UnsupportedRule(f"keyword of type {name}")


def compile_condition(node: Node) -> Predicate:
    """A processed condition tree (plain form) as one predicate."""
    if "f" in node:
        return _field_value(node["f"], node["v"])
    if "and" in node:
        return _all_of([compile_condition(a) for a in node["and"]])
    if "or" in node:
        return _any_of(_merge_or(node["or"]))
    if "not" in node:
        inner = compile_condition(node["not"])
        return lambda ev: not inner(ev)
    if "k" in node:
        return _keyword(node["k"])
    name = node.get("?", sorted(node))
    raise UnsupportedRule(f"condition element {name}")


def _all_of(preds: Sequence[Predicate]) -> Predicate:
    """AND of predicates, first false wins."""
    return _combine(preds, every=True)


def _any_of(preds: Sequence[Predicate]) -> Predicate:
    """OR of predicates, first true wins."""
    return _combine(preds, every=False)


def _combine(preds: Sequence[Predicate], *, every: bool) -> Predicate:
    """AND (``every``) or OR of predicates: closures for the short lists, a loop for the rest
    (no generator made per event, as ``all(p(ev) for p in ...)`` would)."""
    ps = tuple(preds)
    if len(ps) == 1:
        return ps[0]
    if len(ps) == 2:
        a, b = ps
        return (lambda ev: a(ev) and b(ev)) if every else (lambda ev: a(ev) or b(ev))
    if len(ps) == 3:
        a, b, c = ps
        return (lambda ev: a(ev) and b(ev) and c(ev)) if every else (lambda ev: a(ev) or b(ev) or c(ev))
    stop = not every  # the answer once one predicate disagrees with ``every``

    def loop(ev: EventView) -> bool:
        for p in ps:
            if (not p(ev)) is every:
                return stop
        return every

    return loop


def _merge_or(args: Sequence[Node]) -> list[Predicate]:
    """OR-ed string values of one field become one multi-pattern test (the common ``field: [a, b, c]``),
    and so do OR-ed string keywords (a list of keywords: one pass over the event's values, not one
    per keyword; SigmaHQ has a rule of 69 keywords)."""
    by_field: dict[str, _StringSet] = {}
    keywords: _StringSet | None = None
    preds: list[Predicate] = []
    for arg in args:
        if "f" in arg and arg["v"]["t"] == "s":
            sset = by_field.get(arg["f"])
            if sset is None:  # not ``setdefault``: a set made per value was a tenth of building a rule
                sset = by_field[arg["f"]] = _StringSet()
            sset.add(arg["v"]["s"])
        elif "k" in arg and arg["k"]["t"] == "s":
            keywords = keywords or _StringSet()
            keywords.add(arg["k"]["s"], keyword=True)
        else:
            preds.append(compile_condition(arg))
    merged = [_any_value(name, sset.compile()) for name, sset in by_field.items()]
    if keywords is not None:
        test = keywords.compile()
        merged.append(lambda ev: any(test(v) for v in ev.all_lower()))
    return merged + preds


# -- mandatory equalities (the index) ----------------------------------------------------
def required_values(node: Node) -> dict[str, frozenset[str]]:
    """Fields every match must have, each with the set of values it may take (as the rule writes them)."""
    if "f" in node:
        v = node["v"]
        if v["t"] == "s" and not _special(v["s"]):
            return {node["f"]: frozenset({plain_text(v["s"])})}
        if v["t"] == "n":
            return {node["f"]: frozenset({_num_str(v["n"])})}
        return {}
    if "and" in node:
        out: dict[str, frozenset[str]] = {}
        for arg in node["and"]:
            for name, vals in required_values(arg).items():
                if name in out:
                    both = {_lower(v) for v in out[name]} & {_lower(v) for v in vals}
                    out[name] = frozenset(v for v in out[name] | vals if _lower(v) in both)
                else:
                    out[name] = vals
        return out
    if "or" in node:
        branches = [required_values(a) for a in node["or"]]
        if not branches:
            return {}
        common = set(branches[0])
        for b in branches[1:]:
            common &= set(b)
        # in the first branch's order, not the set's (which follows the string hash of each
        # process): the compiled-rule cache is then the same bytes from every compile
        return {name: frozenset().union(*(b[name] for b in branches)) for name in branches[0] if name in common}
    return {}


Atom = tuple[str, str, str]  # (field or "" for any field, "eq" | "base" | "sub", lower-cased key)
_COST = {"eq": 0, "base": 0, "sub": 1}
MIN_LITERAL = 3
#: fields with a handful of common values: an equality on them selects little
_WEAK_FIELDS = frozenset({
    "integritylevel", "objecttype", "company", "product", "eventtype", "logontype", "protocol", "initiated",
    "signed", "signaturestatus", "accessmask", "accesses", "status", "direction", "state",
})
#: literals nearly every Windows event contains
_COMMON = frozenset({
    ".exe", ".dll", "\\windows\\", "c:\\windows\\", "\\system32\\", "c:\\windows\\system32\\",
    "\\syswow64\\", "\\program files", "c:\\program files", "\\users\\", "c:\\users\\",
    "\\appdata\\", "microsoft corporation", "microsoft", "windows", "system", "high", "medium", "file",
    # the shells and hosts most process events name, as a parent or as the process itself
    "cmd.exe", "powershell.exe", "pwsh.exe", "rundll32.exe", "svchost.exe", "conhost.exe", "explorer.exe",
})


def _atom_cost(atom: Atom) -> int:
    """0: exact and selective; 1: a substring; 2: weak (common value or literal), still better than nothing."""
    field_name, kind, key = atom
    if key in _COMMON or _lower(field_name.rsplit(".", 1)[-1]) in _WEAK_FIELDS:
        return 2
    if kind == "sub" and len(key) < 5 and key.isascii():
        return 2
    return _COST[kind]


def _string_atom(field_name: str, raw: Parts) -> Atom | None:
    parts = _wild(raw)
    if field_name and parts and all(isinstance(p, str) for p in parts):
        return (field_name, "eq", _lower("".join(parts)))
    if (field_name and len(parts) == 2 and parts[0] is _MULTI and isinstance(parts[1], str)
            and "\\" in parts[1] and parts[1].rsplit("\\", 1)[1]):
        return (field_name, "base", _lower(parts[1].rsplit("\\", 1)[1]))
    literals = [p for p in parts if isinstance(p, str)]
    best = max(literals, key=len, default="")
    if len(best) >= MIN_LITERAL or (best and not best.isascii()):  # an emoji is rare enough alone
        return (field_name, "sub", _lower(best))
    return None


def regex_literal(pattern: str) -> str:
    """The longest run of plain characters every match of ``pattern`` contains ("" if none is certain)."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        items = _parser.parse(pattern)
    except Exception:
        return ""
    best, run = "", []
    literal = _parser.LITERAL
    for op, arg in items:
        if op is literal:
            run.append(chr(arg))
            continue
        if op is _parser.BRANCH and len(items) == 1:
            return ""  # the whole pattern is an alternation: no single literal is required
        if len("".join(run)) > len(best):
            best = "".join(run)
        run = []
    if len("".join(run)) > len(best):
        best = "".join(run)
    return best


def _value_atoms(field_name: str, v: Value) -> list[Atom] | None:
    t = v["t"]
    if t == "re":
        lit = regex_literal(plain_text(v["r"]))
        return [(field_name, "sub", _lower(lit))] if len(lit) >= MIN_LITERAL else None
    if t == "s" or t == "cs":
        atom = _string_atom(field_name, v["s"])
        return [atom] if atom else None
    if t == "exp":
        out: list[Atom] = []
        for sub in v["v"]:
            atoms = _value_atoms(field_name, sub)
            if not atoms:
                return None
            out.extend(atoms)
        return out
    return None


def anchors(node: Node) -> list[Atom] | None:
    """A disjunction of atoms one of which every match satisfies (None: no such list known).

    ``eq``: the field equals the key; ``base``: the part after the last backslash equals the key
    (what ``Image|endswith: '\\cmd.exe'`` implies); ``sub``: the field (any field, for a keyword)
    contains the key. The matcher files a rule under its atoms (dict lookups, and one
    Aho-Corasick automaton per field for ``sub``) instead of under ``event.code: 1`` with a
    thousand other process-creation rules, so an event meets only rules whose literals it has.
    """
    if "f" in node:
        if node["f"] in INDEX_FIELDS:
            return None
        return _value_atoms(node["f"], node["v"])
    if "k" in node:
        return _value_atoms("", node["k"])  # "": any field (one automaton over all values)
    if "and" in node:
        options = [a for a in (anchors(arg) for arg in node["and"]) if a]
        if not options:
            return None
        return min(options, key=lambda a: (max(_atom_cost(x) for x in a), len(a), -min(len(x[2]) for x in a)))
    if "or" in node:
        out: list[Atom] = []
        for arg in node["or"]:
            a = anchors(arg)
            if not a:
                return None
            out.extend(a)
        return out
    return None


@dataclass(slots=True)
class CompiledRule:
    """A rule ready to evaluate: its predicate and where it is filed in the index.

    ``ir`` is its processed condition trees as plain data (what the compiled-rule cache stores
    and what the predicate is built from; a rule from the cache keeps their JSON text until
    then: most rules of a large set meet no event, and their parsed trees were two thirds of
    the memory a warm scan allocated to read the cache); ``trees``, the same as pySigma objects, are made from
    it when asked for (the Elasticsearch conversion walks them). ``rule``, the processed pySigma
    rule, is made again from ``payload`` on first use when the rule came from the cache (only
    the Elasticsearch conversion needs it).
    """

    key: str
    predicate: Predicate
    required: dict[str, frozenset[str]]
    processed: SigmaRule | None
    payload: Any = None  # whatever the caller attached (the LoadedRule)
    anchors: list[Atom] | None = None
    #: the plain trees, or their JSON text (a rule from the cache: parsed when first needed)
    _ir: list[Node] | str = field(default_factory=list)
    pipeline_name: str = "ztsoc"
    _trees: list[Any] | None = None

    @property
    def ir(self) -> list[Node]:
        """The processed condition trees in their plain form (the matcher's input)."""
        ir = self._ir
        if isinstance(ir, str):
            # checked before it is stored: compiled (mypyc), storing a non-list would be a TypeError
            trees: Any = orjson.loads(ir)
            if not isinstance(trees, list):
                raise UnsupportedRule(f"{self.key}: no condition trees")
            self._ir = ir = trees
        return ir

    @property
    def trees(self) -> list[Any]:
        """The processed condition trees as pySigma objects (pySigma imported for them)."""
        if self._trees is None:
            from detections.sigma.ir import tree_in

            self._trees = [tree_in(t) for t in self.ir]
        return self._trees

    @property
    def rule(self) -> SigmaRule:
        if self.processed is None:
            from sigma.rule import SigmaRule

            from detections.sigma.pipelines import get_pipeline

            source = getattr(self.payload, "rule", None)
            if not isinstance(source, SigmaRule):
                raise UnsupportedRule(f"{self.key}: no source rule to process")
            self.processed = process_rule(source, get_pipeline(self.pipeline_name))
        return self.processed

    def matches(self, doc: Doc) -> bool:
        return self.predicate(EventView(doc))


def process_rule(rule: SigmaRule, pipeline: ProcessingPipeline | None, *, in_place: bool = False) -> SigmaRule:
    """A copy of the rule with the pipeline applied (pySigma transformations change the rule in place).

    ``in_place``: the rule itself is processed, for a caller that has no further use for it as
    written (the copy was 40 % of compiling SigmaHQ's Windows folder).
    """
    import copy

    from sigma.exceptions import SigmaError

    processed = rule if in_place else copy.deepcopy(rule)
    try:
        if pipeline is not None:
            pipeline.apply(processed)
    except SigmaError as exc:
        raise UnsupportedRule(f"{type(exc).__name__}: {exc}") from exc
    return processed


def compile_rule(rule: SigmaRule, pipeline: ProcessingPipeline | None, *, key: str | None = None,
                 payload: Any = None, pipeline_name: str = "ztsoc", in_place: bool = False) -> CompiledRule:
    """Apply the pipeline to a copy of the rule (to the rule itself with ``in_place``) and compile
    its conditions (OR-ed when several)."""
    from sigma.exceptions import SigmaError

    from detections.sigma.ir import NotSerialisable, tree_out

    processed = process_rule(rule, pipeline, in_place=in_place)
    try:
        trees = [c.parsed for c in processed.detection.parsed_condition]
    except SigmaError as exc:
        raise UnsupportedRule(f"{type(exc).__name__}: {exc}") from exc
    trees = [t for t in trees if t is not None]
    try:
        ir = [tree_out(t) for t in trees]
    except NotSerialisable as exc:
        raise UnsupportedRule(str(exc)) from exc
    return compile_trees(key or str(rule.name or rule.id or rule.title), ir, trees=trees, processed=processed,
                         payload=payload, pipeline_name=pipeline_name)


def compile_trees(key: str, ir: list[Node], *, trees: list[Any] | None = None, processed: SigmaRule | None = None,
                  payload: Any = None, pipeline_name: str = "ztsoc", index: bool = True) -> CompiledRule:
    """Processed condition trees in their plain form (from a rule or from the cache) -> a compiled rule.

    ``trees``: the same as pySigma objects, when the caller has them. ``index=False``: only the
    predicate (the cache already holds where the rule is filed)."""
    preds = [compile_condition(t) for t in ir]
    if not preds:
        raise UnsupportedRule("empty condition")
    predicate = _any_of(preds)
    required: dict[str, frozenset[str]] = {}
    atoms = None
    if len(ir) == 1 and index:
        required = required_values(ir[0])
        atoms = anchors(ir[0])
    return CompiledRule(key, predicate, required, processed, payload, atoms, list(ir), pipeline_name,
                        list(trees) if trees is not None else None)


class Matcher:
    """Many compiled rules; ``match(doc)`` tries only the rules the event's index fields allow."""

    def __init__(self, rules: Sequence[CompiledRule], index_fields: Sequence[str] = INDEX_FIELDS) -> None:
        self.rules = list(rules)
        self._tables: list[tuple[str, dict[str, list[CompiledRule]]]] = []
        tables: dict[str, dict[str, list[CompiledRule]]] = {f: {} for f in index_fields}
        self._always: list[CompiledRule] = []
        #: field -> (kind, key) -> rule numbers: exact anchors (see ``anchors``)
        self._anchored: dict[str, dict[tuple[str, str], list[int]]] = {}
        subs: dict[str, dict[str, list[int]]] = {}  # field -> literal -> rule numbers
        for n, rule in enumerate(self.rules):
            # a keyword anchor (any field) costs every event a scan of all its text, and each
            # literal more slows that scan for all (a larger automaton root): a rule that has
            # an index value too is filed under it, so the keyword scan is left with the rules
            # that have nothing else (SigmaHQ windows: 102 keywords -> 20, ~0.03 CPU s a scan)
            if rule.anchors and not (any(a[0] == "" for a in rule.anchors)
                                     and any(rule.required.get(name) for name in index_fields)):
                for fname, kind, key in set(rule.anchors):
                    if kind == "sub":
                        subs.setdefault(fname, {}).setdefault(key, []).append(n)
                    else:
                        self._anchored.setdefault(fname, {}).setdefault((kind, key), []).append(n)
                continue
            for name in index_fields:
                if rule.required.get(name):
                    for value in {_lower(v) for v in rule.required[name]}:
                        tables[name].setdefault(value, []).append(rule)
                    break
            else:
                self._always.append(rule)
        self._tables = [(name, table) for name, table in tables.items() if table]
        #: field ("" for keywords) -> Aho-Corasick automaton of its literals -> rule numbers
        self._automata: dict[str, _LazyAutomaton] = {}
        for fname, literals in subs.items():
            self._automata[fname] = _LazyAutomaton({literal: tuple(numbers) for literal, numbers in literals.items()})
        self._anchor_fields = [f for f in {*self._anchored, *self._automata} if f]
        #: field -> (its automaton or None, exact value -> rule numbers, base name -> rule numbers):
        #: one dict lookup per event field finds everything filed under it
        self._probes: dict[str, _Probe] = {}
        for fname in self._anchor_fields:
            table = self._anchored.get(fname, {})
            self._probes[fname] = (self._automata.get(fname),
                                   {key: ns for (kind, key), ns in table.items() if kind == "eq"},
                                   {key: ns for (kind, key), ns in table.items() if kind == "base"})
        self._keyword = self._automata.get("")

    @property
    def unindexed(self) -> int:
        return len(self._always)

    def candidates(self, ev: EventView) -> list[CompiledRule]:
        """The rules the event's index entries allow, in a fixed order (unindexed, by index field, by anchor).

        A flat event (the usual case) is walked once: each value is lower-cased once, kept in
        the view for the predicates, and looked up in the probes of its field; the keyword
        automaton runs once over all the values joined (a literal spanning two values only adds
        a candidate, which its predicate then rejects).
        """
        found: set[int] = set()
        probes = self._probes
        probe_of = probes.__getitem__
        keyword = self._keyword
        lower = ev.lower
        if not ev.nested:
            doc = ev.doc
            for name in probes.keys() & doc.keys():  # C-level: only the event's indexed fields
                value = doc[name]
                if value.__class__ is str:
                    vals: tuple[str, ...] = (_lower(value),)
                elif value is None:
                    continue
                else:
                    vals = tuple(_lower(v) for v in _as_strings(value))
                lower[name] = vals
                _probe(probe_of(name), vals, found)
            if keyword is not None:
                # one lower() of the values joined: the same text as each value lowered (a NUL
                # is neither cased nor case-ignorable, so even a final sigma lowers alike)
                # numbers and lists as the predicates see them (one pass: an EVTX event nearly always
                # has a number, so joining the values as they are first failed in vain)
                text = "\x00".join([v if v.__class__ is str else "\x00".join(_as_strings(v))
                                     for v in doc.values() if v is not None])
                automaton = keyword.built
                if automaton is None:
                    automaton = keyword.build()
                for _end, numbers in automaton.iter(_lower(text)):
                    found.update(numbers)
                keyword = None
            names: Iterable[str] = ev.aliases
        else:  # walk the index's fields (the event's own may be objects)
            names = [*self._anchor_fields, *ev.aliases]
        for name in names:
            probe = probes.get(name)
            if probe is not None:
                vals2 = lower[name]
                if vals2:
                    _probe(probe, vals2, found)
        if keyword is not None:
            for _end, numbers in keyword.iter("\x00".join(ev.all_lower())):
                found.update(numbers)
        cands = list(self._always)
        multi = False
        for name, by_value in self._tables:
            tvals: tuple[str, ...] | None = lower[name]
            if not tvals:
                continue
            if len(tvals) > 1:
                multi = True
            for v in tvals:
                hit2 = by_value.get(v)
                if hit2:
                    cands.extend(hit2)
        if multi:
            seen: set[int] = set()
            unique = []
            for c in cands:
                if id(c) not in seen:
                    seen.add(id(c))
                    unique.append(c)
            cands = unique
        if found:
            rules = self.rules
            cands.extend(rules[n] for n in sorted(found))
        return cands

    def match(self, doc: Doc, flat: bool = False) -> list[CompiledRule]:
        """The rules the event matches; ``flat``: no value of ``doc`` is an object (see ``EventView``)."""
        ev = EventView(doc, flat)
        return [r for r in self.candidates(ev) if r.predicate(ev)]

    def match_isolated(self, doc: Doc, failed: dict[str, str]) -> list[CompiledRule]:
        """``match``, where a rule whose predicate raises is recorded in ``failed`` (key -> reason)
        and skipped from then on, instead of ending the run for every rule."""
        ev = EventView(doc)
        out: list[CompiledRule] = []
        for r in self.candidates(ev):
            if failed and r.key in failed:
                continue
            try:
                if r.predicate(ev):
                    out.append(r)
            except Exception as exc:  # one rule's fault (a value its predicate cannot handle) stays its own
                failed[r.key] = f"evaluation failed on event {doc.get('event.id')}: {type(exc).__name__}: {exc}"[:300]
        return out


class _LazyAutomaton:
    """An Aho-Corasick automaton of literals -> rule numbers, built on first use.

    A large rule set files literals under a few dozen fields; an event source uses some of
    them, and building the others was a fifth of reading the compiled-rule cache. Callers take
    ``built`` (None until then) or ``build()``, then the automaton's own ``iter``: no Python call
    in between (the method is not replaced at run time: mypyc, which compiles this module, forbids it).
    """

    __slots__ = ("built", "words")

    def __init__(self, words: dict[str, tuple[int, ...]]) -> None:
        self.words = words
        self.built: Any = None

    def build(self) -> Any:
        import ahocorasick

        automaton = ahocorasick.Automaton()
        for literal, numbers in self.words.items():
            automaton.add_word(literal, numbers)
        automaton.make_automaton()
        self.built = automaton
        return automaton

    def iter(self, text: str) -> Iterator[tuple[int, tuple[int, ...]]]:
        """(end, rule numbers) of every literal in ``text``."""
        built = self.built
        if built is None:
            built = self.build()
        return built.iter(text)  # type: ignore[no-any-return]


#: a field's automaton of literals (or None), exact value -> rule numbers, base name -> rule numbers
_Probe = tuple[_LazyAutomaton | None, dict[str, list[int]], dict[str, list[int]]]


def _probe(probe: _Probe, vals: Sequence[str], found: set[int]) -> None:
    """The rule numbers filed under these values of one field: literals they contain, exact values, base names."""
    lazy, eq, base = probe
    automaton = None
    if lazy is not None and vals:
        automaton = lazy.built
        if automaton is None:
            automaton = lazy.build()
    for v in vals:
        if automaton is not None:
            for _end, numbers in automaton.iter(v):
                found.update(numbers)
        if eq:
            hit = eq.get(v)
            if hit:
                found.update(hit)
        if base and "\\" in v:
            hit = base.get(v.rsplit("\\", 1)[1])
            if hit:
                found.update(hit)


def detection_fields(cr: CompiledRule) -> tuple[str, ...]:
    """The fields a rule's detection looks at, in the order it names them (what evidence should show)."""
    seen: dict[str, None] = {}

    def walk(node: Node) -> None:
        if "f" in node:
            seen.setdefault(node["f"], None)
            if node["v"].get("t") == "ref":
                seen.setdefault(node["v"]["f"], None)
        elif "not" in node:
            walk(node["not"])
        else:
            for arg in node.get("and") or node.get("or") or ():
                walk(arg)

    for tree in cr.ir:
        walk(tree)
    return tuple(seen)
