"""What the mapping refuses, decided in one place for both stores.

Elasticsearch refuses a document whose value a field's type cannot hold (an IP that is not
an address, text in a number or boolean field, an object where a keyword is expected).
SQLite would keep it. So that the same input stores the same events on both stores, both
backends ask :func:`problem` first and refuse the same documents with the same reason
(``tests/test_validate.py`` checks the verdicts against the real node with generated values).

The rules are Elasticsearch 8's, as measured on the node (``coerce`` on, the default):

- ``ip``: an IPv4 or IPv6 address as text (no leading zeros, no spaces, no CIDR);
- ``long``: a number, or text Java parses as one (``"443"``, ``"443.7"``, ``"1e3"``; no spaces),
  truncated into the 64-bit range; ``""`` counts as no value;
- ``float`` (mapped ``double``): a finite number, or text of one (spaces around allowed); ``""``
  counts as no value;
- ``boolean``: ``true``/``false``, as JSON or as the text ``"true"``/``"false"``, or ``""``;
- ``keyword``/``text``: any scalar, never an object.

A list is checked value by value (lists of lists are flattened, as the node does); ``None`` is
no value. Only fields the schema declares are checked: dynamic namespaces take any shape.
Hand-written: the rules are the node's, not a library's.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from eventstore.schema import FIELDS

#: Java's decimal number syntax as ``Long``/``Double`` parsing accepts it from JSON text
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


@functools.lru_cache(maxsize=65536)
def _is_ip(text: str) -> bool:
    """Cached: a capture repeats the same few thousand addresses on every flow. Only text is
    an address (``ipaddress`` would take an int)."""
    if not isinstance(text, str):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ip(v: Any) -> str | None:
    if isinstance(v, str) and _is_ip(v):
        return None
    return f"{_show(v)} is not an IP address"


def _number(v: Any) -> float | None:
    """The number a value stands for (``None``: not a number)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        try:
            return float(v)
        except OverflowError:  # an int beyond any double
            return math.inf
    if isinstance(v, str) and _NUMBER.fullmatch(v):
        try:
            return float(v)
        except (ValueError, OverflowError):
            return None
    return None


def _long(v: Any) -> str | None:
    if v == "" or (isinstance(v, int) and not isinstance(v, bool) and _LONG_MIN <= v <= _LONG_MAX):
        return None
    n = _number(v)
    if n is None or not math.isfinite(n):
        return f"{_show(v)} is not a number"
    if not _LONG_MIN <= math.trunc(n) <= _LONG_MAX:
        return f"{_show(v)} is out of the 64-bit range"
    return None


def _double(v: Any) -> str | None:
    if v == "":
        return None
    n = _number(v.strip() if isinstance(v, str) else v)
    if n is None:
        return f"{_show(v)} is not a number"
    if not math.isfinite(n):
        return f"{_show(v)} is not a finite number"
    return None


def _boolean(v: Any) -> str | None:
    if isinstance(v, bool) or v in ("true", "false", ""):
        return None
    return f"{_show(v)} is not true or false"


def _scalar(v: Any) -> str | None:
    return "an object where a value is expected" if isinstance(v, Mapping) else None


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "ip": _ip, "long": _long, "float": _double, "boolean": _boolean, "keyword": _scalar, "text": _scalar,
}
#: field -> its check, for every declared field of a checked type
CHECKS: dict[str, Callable[[Any], str | None]] = {
    name: _CHECKS[kind] for name, kind in FIELDS.items() if kind in _CHECKS
}
_KIND: dict[str, str] = {name: kind for name, kind in FIELDS.items() if kind in _CHECKS}


def problem(doc: Mapping[str, Any]) -> str | None:
    """Why the mapping would refuse this document (``field: reason``), or ``None``.

    The common shapes (text in a keyword, an int in a long, an address in an ip field) are
    decided inline: this runs on every event of every ingest (a 24-field flow: 22 us with a call
    per field, ~5 us so, measured on the shared 2-core machine under load)."""
    kinds = _KIND
    for name, value in doc.items():
        kind = kinds.get(name)
        if kind is None or value is None:
            continue
        cls = value.__class__
        if cls is str:
            if kind == "keyword" or kind == "text" or (kind == "ip" and _is_ip(value)):
                continue
        elif cls is int:
            if kind == "long" and _LONG_MIN <= value <= _LONG_MAX:
                continue
        elif cls is list and (kind == "keyword" or kind == "text") and all(x.__class__ is str for x in value):
            continue
        why = _each(CHECKS[name], value)
        if why is not None:
            return f"{name}: {why}"
    return None


def _each(check: Callable[[Any], str | None], value: Any) -> str | None:
    if isinstance(value, list):
        for item in value:
            if item is None:
                continue
            why = _each(check, item)
            if why is not None:
                return why
        return None
    return check(value)


# -- documents of a known shape -----------------------------------------------------------

#: what a keyword or text field may hold with no further look (``problem`` refuses only a mapping there)
_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})
#: (kind, type) -> a test of such a value ``{}``, true only when that field's check passes
#: (addresses are tested together, against ``_VALID_IPS``)
_TERMS: dict[tuple[str, type], str] = {
    ("long", int): "_LONG_MIN <= {} <= _LONG_MAX",
    # an int beyond any double raises in isfinite: problem() decides
    ("float", float): "isfinite({})",
    ("float", int): "isfinite({})",
    ("boolean", bool): "",
    **{(kind, type(None)): "" for kind in ("ip", "long", "float", "boolean")},
}
_PLAIN_TERM = "({0}.__class__ in _PLAIN or {0}.__class__ is list and _PLAIN.issuperset(map(type, {0})))"
#: addresses already found valid (bounded: emptied when full); only text is ever put in
_VALID_IPS: set[str] = set()
_MAX_VALID_IPS = 1 << 16


def _valid_ips(values: tuple[Any, ...]) -> bool:
    """Every value is an address (remembered); unhashable values raise: problem() decides."""
    if not all(map(_is_ip, values)):
        return False
    if len(_VALID_IPS) >= _MAX_VALID_IPS:
        _VALID_IPS.clear()
    _VALID_IPS.update(values)
    return True


_SCOPE = {"_VALID_IPS": _VALID_IPS, "_valid_ips": _valid_ips, "_PLAIN": _PLAIN, "_LONG_MIN": _LONG_MIN,
          "_LONG_MAX": _LONG_MAX, "isfinite": math.isfinite, "map": map, "type": type}
#: the names the terms of :func:`typed_terms` and :func:`keyword_terms` use, for a caller that
#: compiles them into its own function
TERM_SCOPE: Mapping[str, Any] = MappingProxyType(_SCOPE)
#: the kinds :func:`typed_terms` looks at (keyword and text: :func:`keyword_terms`)
TYPED_KINDS: frozenset[str] = frozenset({"ip", "long", "float", "boolean"})
#: each checked field's name as the schema spells it (the very string: what a caller compiles
#: into source comes from here, never from a document's keys)
_NAMES: dict[str, str] = {name: name for name in _KIND}

ValuesCheck = Callable[[Sequence[Any]], bool]


def checked_fields(keys: Iterable[Any], kinds: frozenset[str]) -> list[str]:
    """The schema's names of the ``keys`` whose kind is among ``kinds``, in key order."""
    names = _NAMES
    return [names[key] for key in keys if _KIND.get(key) in kinds]


def _compile(terms: list[str]) -> ValuesCheck:
    """One expression over the values ``v``: built from the templates above and value positions
    only, never from a document's text (the names it tests come from the schema)."""
    if not terms:
        return _always
    test: ValuesCheck = eval(f"lambda v: {' and '.join(terms)}", dict(_SCOPE))
    return test


def typed_terms(fields: Iterable[tuple[str, type, str]], *, small_ints: bool = False) -> list[str] | None:
    """For fields ``(name, class of its value, expression of its value)``, terms (source text
    over :data:`TERM_SCOPE`) that are all true only when no ip, long, float or boolean field
    among them would be refused. ``None`` when such a value is of a type only :func:`problem`
    can judge (text in a number field...). ``small_ints``: the caller knows every int is within
    53 bits (orjson's ``OPT_STRICT_INTEGER`` said so), so longs need no look.

    Why: ``problem`` walks every field of every document (~4 us a flow). A batch holds a
    few shapes; which values need a look, and how, is known once per shape, and the test is
    one expression over just those (a flow's: is every address among those already found
    valid, ``v[9] in _VALID_IPS and v[11] in _VALID_IPS and _VALID_IPS.issuperset(v[24])``). It must never be true when
    ``problem`` would refuse (``tests/test_sqlite_rows.py`` holds it to that on generated
    documents). The expressions are the caller's (positions, local names), never a document's text."""
    terms: list[str] = []
    addresses: list[tuple[str, bool]] = []  # (expression, a list of them): one test for all of them
    for name, cls, expr in fields:
        kind = _KIND.get(name)
        if kind not in TYPED_KINDS or (small_ints and kind == "long" and cls is int):
            continue
        if kind == "ip" and cls in (str, list):
            addresses.append((expr, cls is list))
            continue
        term = _TERMS.get((kind, cls))
        if term is None:
            return None
        if term:
            terms.append(f"({term.format(expr)})")
    if addresses:  # each known address one ``in`` (half the time of one issuperset of a tuple of them)
        known = " and ".join(f"_VALID_IPS.issuperset({e})" if many else f"{e} in _VALID_IPS" for e, many in addresses)
        found = ", ".join(f"*{e}" if many else e for e, many in addresses)
        terms.insert(0, f"(({known}) or _valid_ips(({found},)))")
    return terms


def keyword_terms(exprs: Iterable[str]) -> list[str]:
    """Terms true only when none of these values (of keyword or text fields) holds a mapping
    (the one thing ``problem`` refuses there)."""
    return [_PLAIN_TERM.format(expr) for expr in exprs]


def typed_check(keys: Sequence[Any], types: Sequence[type], *, small_ints: bool = False) -> ValuesCheck | None:
    """:func:`typed_terms` as one test over the values of documents with these keys in this
    order holding values of exactly these types."""
    terms = typed_terms(((name, cls, f"v[{i}]") for i, (name, cls) in enumerate(zip(keys, types, strict=True))),
                        small_ints=small_ints)
    return None if terms is None else _compile(terms)


def keyword_check(keys: Sequence[Any]) -> ValuesCheck:
    """For documents with these keys in this order, a test over the values that is true only
    when no keyword or text field holds a mapping. With :func:`typed_check` true as well,
    ``problem`` finds nothing."""
    return _compile(keyword_terms(f"v[{i}]" for i, name in enumerate(keys)
                                  if _KIND.get(name) in ("keyword", "text")))


def _always(values: Sequence[Any]) -> bool:
    return True
