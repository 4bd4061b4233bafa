"""The rows the embedded store writes: (event.id, time in epoch ms, hot values..., multi, JSON).

Two ways to the same row. :func:`careful_row` checks a document field by field and is the
reference: whatever it stores or refuses, with its reason, is the store's answer.
:func:`prepare_row_groups` is the fast way for a batch: documents of one *shape* (the same keys in
the same order, and the same types in the few fields the row looks at; a collector's batch
has a handful) share what can be decided once, compiled into one small function per shape:

- which values the mapping could refuse, and how to test them (``validate.typed_terms``:
  one expression over just those values, e.g. a flow's addresses as one set lookup;
  orjson's ``OPT_STRICT_INTEGER`` clears every long, a class check its type);
- which fields the row takes, read by name: no tuple of every value, no tuple of every
  value's type per event (those two were ~2.4 us of the ~6 us a flow cost);
- the time: ``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` (what ``timeutil.to_iso`` writes) is a cached
  second plus the milliseconds, never a parse per event.

A shape also knows which hot columns its rows fill, so :func:`prepare_row_groups` hands
them over grouped by those columns, without their NULLs: the store inserts each group with
a statement naming only its columns (binding a ``None`` costs ``sqlite3`` ~0.3 us, as much as
the rest of a flow's row; flows leave three or four of the row's nine values NULL).

Anything else (a new shape once ``MAX_SHAPES`` are known, a value the quick test cannot
clear, text orjson refuses such as lone surrogates, an int past 53 bits, an odd time) goes through
``validate.problem`` or :func:`careful_row` itself, so both ways store exactly the same row
and refuse exactly the same documents with the same reason (``tests/test_sqlite_rows.py``
holds them to that on generated documents). Hand-written: the layout is this store's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import orjson

from eventstore.query.values import epoch_ms
from eventstore.text import replace_unencodable
from eventstore.validate import TERM_SCOPE, TYPED_KINDS, checked_fields, keyword_terms, problem, typed_terms

#: (position in the batch, event.id or position, reason), sorted into the WriteResult at the end
Problems = list[tuple[int, str, str]]
Row = tuple[Any, ...]
#: the hot fields a compact row holds, as positions in the layout's ``hot`` (ascending): the
#: row is (event.id, time, those values, JSON); every other column is NULL
Columns = tuple[int, ...]
#: the whole row of :func:`careful_row`: (event.id, time, every hot value, multi, JSON)
FULL: Columns = (-1,)

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
#: shapes learnt per table layout (each makes one small function: ~0.55 ms when its source
#: is new, see ``_CODE``); past this, new shapes go the careful way: a hostile stream of
#: ever-new keys costs neither memory nor more time than the careful way
MAX_SHAPES = 2048
#: the fast way's encoding refuses ints past 53 bits (the careful way takes them): every
#: int it lets through fits a long, a hot column and a time, with no look
_STRICT = orjson.OPT_STRICT_INTEGER
_KEYWORD = frozenset({"keyword", "text"})

#: a shape's row maker: the row of a document and its JSON, ``None`` when a value the shape
#: looks at is not of the type it was made for; raises when the document goes the careful way
RowMaker = Callable[[dict[str, Any], bytes], "Row | None"]


@dataclass(frozen=True, slots=True)
class _Shape:
    """What is decided once for documents with the same keys (in the same order) whose values
    the row looks at (``event.id``, ``@timestamp``, the hot fields, the ip, number and boolean
    fields) are of the same types."""

    row: RowMaker
    #: those values, whose types pick the shape
    looked_at: Callable[[dict[str, Any]], tuple[Any, ...]]
    #: the hot fields its rows hold: those present and not null (``None`` is never bound:
    #: ``sqlite3`` sends each through its adapter lookup, ~0.3 us a value, measured)
    columns: Columns


def _looked_at(keys: tuple[Any, ...], hot: tuple[str, ...]) -> list[str] | None:
    """The fields whose types a shape of these keys is made for (``None``: no id or time, the
    careful way says so): the id, the time, the hot fields present, the typed ones."""
    if "event.id" not in keys or "@timestamp" not in keys:
        return None
    names = ["event.id", "@timestamp", *(name for name in hot if name in keys)]
    names += [name for name in checked_fields(keys, TYPED_KINDS) if name not in names]
    return names


def _shape(keys: tuple[Any, ...], names: list[str], types: tuple[type, ...], hot: tuple[str, ...]) -> _Shape | None:
    """The shape's row maker, or None when its documents go the careful way (an id that is not
    text, an odd time, a list in a hot field: ``multi``...).

    The maker is one function compiled from the schema's names, the positions of the row and
    the terms of ``validate.typed_terms`` (never from a document's text): it reads the values
    it needs by name, checks their types are the shape's (else ``None``: another shape), tests
    the ones the mapping could refuse and returns the row. Per flow: ~17 dictionary reads and
    class checks, one set lookup for the addresses, against a tuple of every value and a
    tuple of their types before."""
    kinds = dict(zip(names, types, strict=True))
    if kinds["event.id"] is not str or kinds["@timestamp"] not in (str, int):
        return None
    if not _HOT_TYPES.issuperset(kinds[name] for name in hot if name in kinds):
        return None
    local = {name: f"x{i}" for i, name in enumerate(names)}
    typed = typed_terms(((name, kinds[name], local[name]) for name in names), small_ints=True)
    keywords = checked_fields(keys, _KEYWORD)
    scope: dict[str, Any] = {**TERM_SCOPE, "_S": _SECONDS, "_F": _FRACTIONS, "_second": _second,
                             "_Careful": _Careful, "_problem": problem}
    guard = []
    for i, cls in enumerate(types):
        if cls is type(None):
            guard.append(f"x{i} is None")
        else:
            scope[f"_T{i}"] = cls
            guard.append(f"x{i}.__class__ is _T{i}")
    # Each field is read with the key object of the document this shape was learnt from, not
    # a constant equal to it: a producer's documents share their key objects (its literals,
    # orjson's key cache), and a dotted name is never interned, so a constant matches a key
    # only through its hash and a memcmp (measured: 0.15 of the ~2.6 us a row costs)
    own = {key: key for key in keys if key.__class__ is str}
    for i, name in enumerate(names):
        scope[f"_N{i}"] = own.get(name, name)
    for i, name in enumerate(keywords):
        scope[f"_M{i}"] = own.get(name, name)
    id_, ts = local["event.id"], local["@timestamp"]
    lines = [f"def make({', '.join(scope)}):"]
    if keywords:  # no keyword or text field holds a mapping: asked only when the JSON has an object inside
        lines += ["    def plain(d):", *(f"        k{i} = d[_M{i}]" for i in range(len(keywords))),
                  f"        return {' and '.join(keyword_terms(f'k{i}' for i in range(len(keywords))))}"]
    lines += ["    def row(d, text):", *(f"        {local[name]} = d[_N{i}]" for i, name in enumerate(names)),
              f"        if not ({' and '.join(guard)}):", "            return None",
              f"        if not {id_}:", "            raise _Careful"]
    if kinds["@timestamp"] is str:  # the cached second plus the milliseconds; an odd time raises
        lines += [f"        s = _S.get({ts}[:19])", "        if s is None:", f"            s = _second({ts}[:19])",
                  f"        {ts} = s + _F[{ts}[19:]]"]
    if typed is None:
        lines += ["        if _problem(d) is not None:", "            raise _Careful"]
    else:
        nested = 'text.find(b"{", 1) != -1 and not plain(d)' if keywords else "False"
        cleared = "(" + " and ".join(typed) + ")" if typed else "True"
        lines += [f"        if (not {cleared} or {nested}) and _problem(d) is not None:", "            raise _Careful"]
    columns = tuple(i for i, name in enumerate(hot) if name in kinds and kinds[name] is not type(None))
    values = "".join(f"{local[hot[i]]}, " for i in columns)
    lines += [f"        return ({id_}, {ts}, {values}text.decode())", "    return row"]
    source = "\n".join(lines) + "\n"
    code = _CODE.get(source)
    if code is None:
        code = compile(source, "<sqlite_rows shape>", "exec")
        if len(_CODE) >= MAX_SHAPES:
            _CODE.clear()
        _CODE[source] = code
    namespace: dict[str, Any] = {}
    exec(code, {}, namespace)  # the source holds local names and positions only
    return _Shape(row=namespace["make"](*scope.values()), looked_at=itemgetter(*names), columns=columns)


#: compiled shape sources by their text. The text holds positions, never names or types (those
#: are the ``make`` arguments), so shapes with other field names often share one: SigmaHQ's and
#: the attack samples' 479 EVTX files learn 153 shapes from 20 sources. Compiling was ~0.55 ms a
#: shape, 70 % of making the rows of those 8,493 events. Bounded like the shapes.
_CODE: dict[str, Any] = {}


_SHAPES: dict[tuple[str, ...], dict[Any, _Shape]] = {}

#: "YYYY-MM-DDTHH:MM:SS" -> epoch ms of that second (bounded: cleared when full)
_SECONDS: dict[str, int] = {}
_MAX_SECONDS = 1 << 16
#: "YYYY-MM-DDTHH:MM" -> epoch ms of that minute (bounded: cleared when full)
_MINUTES: dict[str, int] = {}
_MAX_MINUTES = 1 << 14
_MINUTE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
#: what may follow the minute in a second: ":SS"
_IN_MINUTE: dict[str, int] = {f":{i:02d}": i * 1000 for i in range(60)}
#: what may follow the second in the cached form: ".mmmZ" or "Z"
_FRACTIONS: dict[str, int] = {"Z": 0, **{f".{i:03d}Z": i for i in range(1000)}}


def _second(text: str) -> int | None:
    """Epoch ms of ``YYYY-MM-DDTHH:MM:SS`` (UTC), remembered; None when it is not one. A new
    second is its minute's (remembered too) plus the seconds: ~0.3 us, where parsing it was
    2.7 us (at a million events a day, one event in twelve starts a second)."""
    minute = _MINUTES.get(text[:16])
    if minute is None:
        if not _MINUTE.fullmatch(text[:16]):
            return None
        try:
            minute = timestamp_ms(text[:16])
        except (ValueError, OverflowError):
            return None
        if len(_MINUTES) >= _MAX_MINUTES:
            _MINUTES.clear()
        _MINUTES[text[:16]] = minute
    seconds = _IN_MINUTE.get(text[16:])
    if seconds is None:
        return None
    if len(_SECONDS) >= _MAX_SECONDS:
        _SECONDS.clear()
    _SECONDS[text] = ms = minute + seconds
    return ms


class _Careful(Exception):
    """This document goes the careful way."""


def _other_shape(shapes: dict[Any, _Shape], first: _Shape | None, keys: tuple[Any, ...], doc: dict[str, Any],
                 hot: tuple[str, ...]) -> _Shape:
    """The shape of a document whose keys are new, or whose looked-at values are not of the
    types of the first shape of its keys (kept under ``(keys, types)``)."""
    if first is None:
        names = _looked_at(keys, hot)
        if names is None:
            raise _Careful
        key: Any = keys
        types = tuple(map(type, itemgetter(*names)(doc)))
    else:
        types = tuple(map(type, first.looked_at(doc)))
        key = (keys, types)
        shape = shapes.get(key)
        if shape is not None:
            return shape
        names = _looked_at(keys, hot) or []
    if len(shapes) >= MAX_SHAPES:
        raise _Careful
    shape = _shape(keys, names, types, hot)  # an odd shape (refused before any compiling) is not remembered
    if shape is None:
        raise _Careful
    shapes[key] = shape
    return shape


def prepare_row_groups(docs: Iterable[Any], layout: Any, errors: Problems, start: int = 0
                       ) -> dict[Columns, list[Row]]:
    """The rows ``write_events`` stores, grouped by the columns they hold (each group in the
    documents' order; :data:`FULL` rows are the careful way's); refused documents are added
    to ``errors``. Each row is :func:`careful_row`'s without its NULLs (:func:`full_row`).

    ``layout`` is an ``eventstore.query.sqlite.Layout`` (its ``hot`` fields, in order)."""
    hot = tuple(layout.hot)
    shapes = _SHAPES.setdefault(hot, {})
    encode = orjson.dumps
    groups: dict[Columns, list[Row]] = {}
    for position, doc in enumerate(docs, start):
        try:
            if doc.__class__ is not dict:
                raise _Careful
            text = encode(doc, option=_STRICT)  # refuses lone surrogates, ints past 53 bits...
            keys = tuple(doc)
            shape = shapes.get(keys)
            if shape is None or (row := shape.row(doc, text)) is None:
                shape = _other_shape(shapes, shape, keys, doc, hot)
                row = shape.row(doc, text)
                if row is None:
                    raise _Careful
            rows = groups.get(shape.columns)
            if rows is None:
                rows = groups[shape.columns] = []
            rows.append(row)
        except Exception:  # whatever the fast way trips on, the careful way decides
            row = careful_row(doc, position, hot, errors)
            if row is not None:
                groups.setdefault(FULL, []).append(row)
    return groups


def full_row(columns: Columns, row: Row, hot_count: int) -> Row:
    """A grouped row as :func:`careful_row` makes it: its NULLs back in their places."""
    if columns == FULL:
        return row
    values: list[Any] = [None] * hot_count
    for at, i in enumerate(columns, 2):
        values[i] = row[at]
    return (row[0], row[1], *values, None, row[-1])


def prepare_rows(docs: Iterable[Any], layout: Any, errors: Problems, start: int = 0) -> list[Row]:
    """The rows of :func:`prepare_row_groups` in the documents' order, whole: exactly what
    :func:`careful_row` makes of each (see the module docstring). One document at a time, so
    slower: for tests, benchmarks and a batch that must keep its order."""
    rows: list[Row] = []
    for position, doc in enumerate(docs, start):
        for columns, got in prepare_row_groups((doc,), layout, errors, position).items():
            rows += [full_row(columns, row, len(layout.hot)) for row in got]
    return rows
