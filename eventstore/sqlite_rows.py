"""The rows the embedded store writes: (event.id, time in epoch ms, hot values..., multi, JSON).

Two ways to the same row. :func:`careful_row` checks a document field by field and is the
reference: whatever it stores or refuses, with its reason, is the store's answer.
:func:`prepare_rows` is the fast way for a batch: documents of one *shape* (the same keys in
the same order holding values of the same types; a collector's batch has a handful) share
what can be decided once:

- which values the mapping could refuse, and how to test them (``validate.typed_check``:
  one compiled expression over just those values, e.g. a flow's addresses as one set
  lookup; orjson's ``OPT_STRICT_INTEGER`` clears every long);
- where ``event.id``, ``@timestamp`` and the hot fields sit, so the row comes out of one
  ``itemgetter`` over the document's values;
- the time: ``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` (what ``timeutil.to_iso`` writes) is a cached
  second plus the milliseconds, never a parse per event.

Anything else (a new shape once ``MAX_SHAPES`` are known, a value the quick test cannot
clear, text orjson refuses such as lone surrogates, an int past 53 bits, an odd time) goes through
``validate.problem`` or :func:`careful_row` itself, so both ways store exactly the same row
and refuse exactly the same documents with the same reason (``tests/test_sqlite_rows.py``
holds them to that on generated documents). Hand-written: the layout is this store's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import orjson

from eventstore.query.values import epoch_ms
from eventstore.text import replace_unencodable
from eventstore.validate import keyword_check, problem, typed_check

#: (position in the batch, event.id or position, reason), sorted into the WriteResult at the end
Problems = list[tuple[int, str, str]]
Row = tuple[Any, ...]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MS = timedelta(milliseconds=1)


def timestamp_ms(value: Any) -> int:
    """``@timestamp`` (ISO 8601 with ``Z`` or an offset, naive is UTC, or epoch millis) as epoch ms."""
    if type(value) is str:
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            ms = epoch_ms(value)
            if ms is None:
                raise ValueError(f"bad @timestamp {value!r}: not ISO 8601") from None
            return ms
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return (ts - _EPOCH) // _MS
    if type(value) is int:
        if not _INT64_MIN <= value <= _INT64_MAX:  # SQLite's INTEGER cannot hold it
            raise ValueError(f"bad @timestamp {value!r}: out of range")
        return value
    if isinstance(value, datetime):
        return ((value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH) // _MS
    raise ValueError(f"bad @timestamp {value!r}: expected an ISO 8601 string")


def dumps(doc: Any) -> str:
    """The stored JSON text: orjson's, or the standard encoder's for what orjson refuses."""
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # e.g. an int beyond 64 bits: the slower encoder takes those
        return json.dumps(doc, ensure_ascii=False)


def careful_row(doc: Any, position: int, hot: tuple[str, ...], errors: Problems) -> Row | None:
    """One document checked field by field: its row, or ``None`` and an ``errors`` entry."""
    if not isinstance(doc, dict):
        errors.append((position, str(position), f"not a JSON object but {type(doc).__name__}"))
        return None
    doc = replace_unencodable(doc) or doc  # lone surrogates: stored replaced and tagged, never refused
    event_id = doc.get("event.id")
    if event_id is None:
        errors.append((position, str(position), "missing event.id"))
        return None
    if type(event_id) is not str or not event_id:
        errors.append((position, str(position), f"event.id must be a non-empty string, got {event_id!r}"))
        return None
    if "@timestamp" not in doc:
        errors.append((position, event_id, "missing @timestamp"))
        return None
    if (why := problem(doc)) is not None:
        errors.append((position, event_id, why))
        return None
    try:
        ms = timestamp_ms(doc["@timestamp"])
    except (ValueError, OverflowError) as exc:
        errors.append((position, event_id, str(exc)))
        return None
    values = [doc.get(f) for f in hot]
    multi = None
    if list in map(type, values):
        values, multi = _split_multi(hot, values)
    for i, (name, value) in enumerate(zip(hot, values, strict=True)):
        if value is not None and not isinstance(value, str | int | float):
            errors.append((position, event_id, f"{name} must be a value or a list of values, got {value!r}"))
            return None
        if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX:
            values[i] = str(value)  # the TEXT column stores an int as its digits anyway; SQLite cannot bind this one
    try:
        text = dumps(doc)
    except (TypeError, ValueError) as exc:
        errors.append((position, event_id, f"not serialisable as JSON: {exc}"))
        return None
    return (event_id, ms, *values, multi, text)


def _split_multi(hot: tuple[str, ...], values: list[Any]) -> tuple[list[Any], str | None]:
    """A hot field holding an array: its column stays NULL, ``multi`` names it (``|f|g|``)."""
    names = []
    for i, v in enumerate(values):
        if type(v) is list:
            if len(v) == 1 and not isinstance(v[0], list | dict):
                values[i] = v[0]
            else:
                values[i] = None
                if v:
                    names.append(hot[i])
    return values, ("|" + "|".join(names) + "|") if names else None


# -- the fast way -------------------------------------------------------------------------

#: values a hot column takes as they are (a list needs ``multi``: the careful way)
_HOT_TYPES: frozenset[type] = frozenset({str, int, float, bool, type(None)})
#: shapes learnt per table layout (each compiles two small expressions, ~0.1 ms); past this,
#: new shapes go the careful way: a hostile stream of ever-new keys costs neither memory
#: nor more time than the careful way
MAX_SHAPES = 2048
#: the fast way's encoding refuses ints past 53 bits (the careful way takes them): every
#: int it lets through fits a long, a hot column and a time, with no look
_STRICT = orjson.OPT_STRICT_INTEGER


@dataclass(frozen=True, slots=True)
class _Shape:
    """What is decided once for documents with the same keys holding the same value types."""

    #: ``validate.typed_check``: no ip, number or boolean field the mapping would refuse
    #: (None: only ``problem`` can say)
    typed: Callable[[Sequence[Any]], bool] | None
    #: no keyword or text field holds a mapping (asked only when the JSON has an object inside)
    plain: Callable[[Sequence[Any]], bool]
    #: the row out of ``(*values, None, ms, json)``
    row: Callable[[Sequence[Any]], Row]
    ts_text: bool  # @timestamp is text (else epoch millis, an int)
    id_at: int


def _shape(keys: tuple[Any, ...], types: tuple[type, ...], hot: tuple[str, ...]) -> _Shape | None:
    """The shape's plan, or None when its documents go the careful way (no id or time, a list
    in a hot field: ``multi``...)."""
    if "event.id" not in keys or "@timestamp" not in keys or types[keys.index("event.id")] is not str:
        return None
    id_at, ts_at, end = keys.index("event.id"), keys.index("@timestamp"), len(keys)
    if types[ts_at] is not str and types[ts_at] is not int:
        return None
    places = [keys.index(name) if name in keys else end for name in hot]
    if not _HOT_TYPES.issuperset(types[i] for i in places if i < end):
        return None
    return _Shape(typed=typed_check(keys, types, small_ints=True), plain=keyword_check(keys),
                  row=itemgetter(id_at, end + 1, *places, end, end + 2), ts_text=types[ts_at] is str, id_at=id_at)


_SHAPES: dict[tuple[str, ...], dict[tuple[tuple[Any, ...], tuple[type, ...]], _Shape]] = {}

#: "YYYY-MM-DDTHH:MM:SS" -> epoch ms of that second (bounded: cleared when full)
_SECONDS: dict[str, int] = {}
_MAX_SECONDS = 1 << 16
_SECOND = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
#: what may follow the second in the cached form: ".mmmZ" or "Z"
_FRACTIONS: dict[str, int] = {"Z": 0, **{f".{i:03d}Z": i for i in range(1000)}}


def _second(text: str) -> int | None:
    """Epoch ms of ``YYYY-MM-DDTHH:MM:SS`` (UTC), remembered; None when it is not one."""
    if not _SECOND.fullmatch(text):
        return None
    try:
        ms = timestamp_ms(text)
    except (ValueError, OverflowError):
        return None
    if len(_SECONDS) >= _MAX_SECONDS:
        _SECONDS.clear()
    _SECONDS[text] = ms
    return ms


class _Careful(Exception):
    """This document goes the careful way."""


def prepare_rows(docs: Iterable[Any], layout: Any, errors: Problems, start: int = 0) -> list[Row]:
    """The rows ``write_events`` hands to ``executemany``, exactly as :func:`careful_row` would
    make them (see the module docstring); refused documents are added to ``errors``.

    ``layout`` is an ``eventstore.query.sqlite.Layout`` (its ``hot`` fields, in order)."""
    hot = tuple(layout.hot)
    shapes = _SHAPES.setdefault(hot, {})
    encode = orjson.dumps
    seconds, fractions = _SECONDS, _FRACTIONS
    rows: list[Row] = []
    append = rows.append
    for position, doc in enumerate(docs, start):
        try:
            if doc.__class__ is not dict:
                raise _Careful
            text = encode(doc, option=_STRICT)  # refuses lone surrogates, ints past 53 bits...
            key = (tuple(doc), tuple(map(type, doc.values())))
            shape = shapes.get(key)
            if shape is None:
                if len(shapes) >= MAX_SHAPES:
                    raise _Careful
                shape = _shape(*key, hot)  # an odd shape (refused before any compiling) is not remembered
                if shape is None:
                    raise _Careful
                shapes[key] = shape
            ms = doc["@timestamp"]
            if shape.ts_text:
                fraction = fractions.get(ms[19:])
                second = seconds.get(ms[:19])
                if second is None and fraction is not None:
                    second = _second(ms[:19])
                if second is None or fraction is None:
                    raise _Careful
                ms = second + fraction
            # the values, then what the row adds: None (a missing hot field, multi), the time, the JSON
            values = (*doc.values(), None, ms, text.decode())
            typed = shape.typed
            if not values[shape.id_at]:
                raise _Careful
            if (typed is None or not typed(values) or (text.find(b"{", 1) != -1 and not shape.plain(values))) \
                    and problem(doc) is not None:
                raise _Careful  # the careful way says why, as it would have
            append(shape.row(values))
        except Exception:  # whatever the fast way trips on, the careful way decides
            row = careful_row(doc, position, hot, errors)
            if row is not None:
                append(row)
    return rows
