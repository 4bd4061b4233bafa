"""The embedded store's two ways to a row agree: ``prepare_rows`` (per shape, for batches)
against ``careful_row`` (field by field, the reference), and ``validate.typed_check``
against ``validate.problem``, on generated documents that repeat shapes with hostile values:
lone surrogates, odd types, nested objects, bad addresses, numbers past 64 bits, odd times."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import sqlite_rows, sqlite_store
from eventstore.sqlite_rows import _SHAPES, FULL, careful_row, full_row, prepare_row_groups, prepare_rows
from eventstore.sqlite_store import EVENTS, SQLiteStore, insert_sql
from eventstore.validate import keyword_check, problem, typed_check

HOT = tuple(EVENTS.hot)

_texts = st.one_of(
    st.sampled_from(["", "x", "sshd", "10.1.2.3", "443", " 443", "1e3", "true", "false", "NaN", "ä€😀"]),
    st.text(max_size=8),
    st.text(max_size=4).map(lambda s: s + "\ud800"),  # a lone surrogate: orjson refuses, both store it replaced
    st.text(max_size=4).map(lambda s: "\udfff" + s),
)
_ips = st.sampled_from(["10.0.0.1", "192.168.1.254", "0.0.0.0", "255.255.255.255", "::1", "fe80::1", "2001:db8::7",
                        "01.2.3.4", "1.2.3.4 ", "256.1.1.1", "10.0.0.1/24", "fe80::1%eth0", "1.2.3", "", "host"])
_ints = st.one_of(st.integers(-70_000, 70_000), st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1,
                                                                 2**64, 10**30]))
_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, -1.0, 1e300, 443.0]))
_scalars = st.one_of(_texts, _ips, _ints, _floats, st.booleans(), st.none())
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["a", "b.c", "source.ip", "k\ud800"]), inner, max_size=2)),
    max_leaves=5,
)
#: shaped values: most documents look like a collector's, some do not
_value = st.one_of(_scalars, _scalars, st.lists(st.one_of(_ips, _texts), max_size=3), _values)

_good_ips = st.sampled_from(["10.0.0.1", "192.168.1.254", "0.0.0.0", "255.255.255.255", "::1", "2001:db8::7"])
_good_texts = st.one_of(st.sampled_from(["network.flow", "sshd", "root", "web-01"]), st.text(max_size=6))
#: a collector's values for each field (hostile ones are mixed in by ``batches``)
_GOOD: dict[str, st.SearchStrategy[Any]] = {
    "source.ip": _good_ips, "destination.ip": _good_ips, "host.ip": _good_ips,
    "related.ip": st.lists(_good_ips, max_size=3),
    "source.port": st.integers(0, 65535), "network.bytes": st.one_of(st.integers(0, 2**40), st.sampled_from([2**53 - 1, 2**63 - 1, -(2**63)])),
    "process.pid": st.integers(1, 99999), "event.risk_score": st.floats(-1e9, 1e9),
    "ztsoc.alert.score": st.one_of(st.floats(0, 1), st.integers(0, 100)), "tls.established": st.booleans(),
    "event.category": st.lists(_good_texts, max_size=2), "message": _good_texts, "user.name": _good_texts,
    "host.name": _good_texts, "event.dataset": _good_texts,
    "dns.answers": st.lists(st.fixed_dictionaries({"data": _good_ips, "ttl": st.integers(0, 300)}), max_size=2),
    "labels": st.dictionaries(st.sampled_from(["a", "b"]), _good_texts, max_size=2),
    "custom.thing": _values, "winlog.event_data.X": _good_texts,
}
_bad_ips = ["01.2.3.4", "1.2.3.4 ", "256.1.1.1", "10.0.0.1/24", "fe80::1%eth0", "1.2.3", "", "x", 167772161, None]
_bad_longs = [2**63, -(2**63) - 1, 2**64 - 1, 2**63 - 1, 2**53, 1.5, "443", " 443", "", True, None, [1, "x"]]
_bad_floats = [math.nan, math.inf, -math.inf, 10**400, 2**63, "1.5", "", False, None, [0.5, math.nan]]
_mappings = [{"a": "x"}, [{"b": None}], ["x", {"c": 1}], [["x"]], ("x",), None]
#: near misses: the type a collector would use, a value the mapping refuses (or does not)
_BAD: dict[str, list[Any]] = {
    "source.ip": _bad_ips, "destination.ip": _bad_ips, "host.ip": _bad_ips,
    "related.ip": [["10.0.0.1", "01.2.3.4"], ["::1", None], ["10.0.0.1", 167772161], [["10.0.0.1"]], "10.0.0.1", []],
    "source.port": _bad_longs, "network.bytes": _bad_longs, "process.pid": _bad_longs,
    "event.risk_score": _bad_floats, "ztsoc.alert.score": _bad_floats,
    "tls.established": ["true", "false", "", 1, None, [True, "x"]],
    "event.category": _mappings, "message": _mappings, "user.name": _mappings, "host.name": [["a", "b"], ["a"], []],
    "event.dataset": [["x"], 7, 2**64, 1.5, True], "dns.answers": _mappings, "labels": _mappings,
    "custom.thing": _mappings, "winlog.event_data.X": _mappings,
}
_FIELDS = list(_GOOD)

_day = datetime(1969, 12, 1, tzinfo=UTC)
_canonical = st.builds(
    lambda days, ms: (_day + timedelta(days=days, milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z",
    st.integers(0, 40_000), st.one_of(st.integers(0, 86_399_999), st.sampled_from([0, 1, 999, 86_399_999])))
_timestamps = st.one_of(
    _canonical, _canonical, _canonical.map(lambda t: t[:19] + "Z"),
    st.sampled_from(["2024-05-01T10:00:00.9999Z", "2024-05-01T10:00:00+02:00", "2024-05-01 10:00:00.000Z",
                     "2024-02-30T00:00:00.000Z", "2024-05-01T10:00:00.123z", "2024-05-01T25:00:00.000Z",
                     "0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2024-05-01T10:00:00.12Z",
                     "2024-05-01T10:00:00.1\uff123Z", "\uff12024-05-01T10:00:00.000Z", "now", "", "1714557600000"]),
    st.integers(-(2**64), 2**64), st.floats(), st.none(), st.lists(_canonical, max_size=2),
)
_ids = st.sampled_from(["", 17, None, "e\ud800", ["e1"]])


@st.composite
def batches(draw: st.DrawFn) -> list[Any]:
    """A few shapes, each repeated with fresh values: the shape cache is hit with new values."""
    shapes = draw(st.lists(st.lists(st.sampled_from(_FIELDS), max_size=6, unique=True), min_size=1, max_size=3))
    docs: list[Any] = []
    for _ in range(draw(st.integers(1, 10))):
        fields = draw(st.sampled_from(shapes))
        doc: dict[Any, Any] = {}
        if draw(st.integers(0, 19)):
            doc["@timestamp"] = draw(_canonical if draw(st.integers(0, 3)) else _timestamps)
        if draw(st.integers(0, 19)):
            doc["event.id"] = draw(_ids if draw(st.integers(0, 5)) == 0 else st.sampled_from(["e1", "e2", "e3", "e4"]))
        for name in fields:
            doc[name] = draw(_GOOD[name])
        if fields and draw(st.integers(0, 2)) == 0:  # one hostile value among clean ones
            name = draw(st.sampled_from(fields))
            doc[name] = draw(st.one_of(st.sampled_from(_BAD[name]), st.sampled_from(_BAD[name]), _value))
        docs.append(doc if draw(st.integers(0, 30)) else draw(st.sampled_from([[doc], "text", None, 7])))
    return docs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_fast_rows_are_the_careful_rows(batch: list[Any]) -> None:
    fast_errors: list[tuple[int, str, str]] = []
    fast = prepare_rows(batch, EVENTS, fast_errors, 5)
    careful_errors: list[tuple[int, str, str]] = []
    careful = [r for i, doc in enumerate(batch, 5) if (r := careful_row(doc, i, HOT, careful_errors)) is not None]
    assert fast == careful
    assert fast_errors == careful_errors


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_row_groups_are_the_careful_rows_without_their_nulls(batch: list[Any]) -> None:
    """What ``write_events`` stores from: grouped by the columns a row holds, each group in
    the documents' order, every row the careful one once its NULLs are put back, and no
    NULL left in a fast row (binding one costs ~0.3 us)."""
    errors: list[tuple[int, str, str]] = []
    groups = prepare_row_groups(batch, EVENTS, errors, 5)
    careful_errors: list[tuple[int, str, str]] = []
    careful = [r for i, doc in enumerate(batch, 5) if (r := careful_row(doc, i, HOT, careful_errors)) is not None]
    assert errors == careful_errors
    assert sum(map(len, groups.values())) == len(careful)
    left = list(careful)
    for columns, rows in groups.items():
        whole = [full_row(columns, row, len(HOT)) for row in rows]
        position = iter(range(len(careful)))  # an in-order subsequence of the careful rows
        assert all(any(careful[i] == row for i in position) for row in whole), columns
        for row in whole:
            left.remove(row)
        if columns != FULL:
            assert len(columns) == len(set(columns)) and list(columns) == sorted(columns)
            assert all(len(row) == 3 + len(columns) and None not in row for row in rows)
    assert left == []


@settings(max_examples=200, deadline=None)
@given(batches())
def test_the_quick_checks_never_clear_what_the_mapping_refuses(batch: list[Any]) -> None:
    """Made once per shape (keys and value types), asked about every document of it."""
    for doc in batch:
        if not isinstance(doc, dict):
            continue
        values = tuple(doc.values())
        try:
            orjson.dumps(doc, option=orjson.OPT_STRICT_INTEGER)
            small = True
        except TypeError:
            small = False
        for small_ints in {False, small}:
            typed = typed_check(tuple(doc), tuple(map(type, values)), small_ints=small_ints)
            try:
                cleared = typed is not None and typed(values) and keyword_check(tuple(doc))(values)
            except (TypeError, ValueError, OverflowError):
                cleared = False  # the caller then asks problem()
            if cleared:
                assert problem(doc) is None, doc


@settings(max_examples=40, deadline=None)
@given(batches())
def test_stored_rows_are_the_careful_rows(batch: list[Any]) -> None:
    """Through ``write_events``: the table holds what a plain ``executemany`` of the careful
    rows stores (each id's first row: the same SQLite conversions on both sides), also when
    several rows go to one INSERT."""
    errors: list[tuple[int, str, str]] = []
    careful = [r for i, doc in enumerate(batch) if (r := careful_row(doc, i, HOT, errors)) is not None]
    ours, plain = SQLiteStore(":memory:"), SQLiteStore(":memory:")
    try:
        ours.init()
        plain.init()
        with patch.object(sqlite_store, "ROWS_PER_INSERT", 3):  # several rows to a statement, and the rest
            result = ours.write_events(batch)
        plain._conn.executemany(insert_sql(EVENTS), careful)
        table = "SELECT * FROM events ORDER BY event_id"  # rowids follow the row groups within a step
        assert ours._conn.execute(table).fetchall() == plain._conn.execute(table).fetchall()
    finally:
        ours.close()
        plain.close()
    assert result.written == len({r[0] for r in careful})
    assert result.written + result.duplicates == len(careful)
    assert result.errors == [(key, why) for _, key, why in errors]


@pytest.mark.parametrize("name", list(_BAD))
def test_each_near_miss_between_clean_documents(name: str) -> None:
    """Every near miss, after and before a clean document of the same shape (clean ones go
    the fast way: the near miss meets a shape already learnt)."""
    def clean(i: int) -> dict[str, Any]:
        return {"@timestamp": f"2024-05-01T10:00:0{i}.999Z", "event.id": f"n{i}", **_CLEAN}
    batch: list[Any] = []
    for i, bad in enumerate(_BAD[name]):
        batch += [clean(i), {**clean(i), "event.id": f"b{i}", name: bad}, clean(i)]
    fast_errors: list[tuple[int, str, str]] = []
    careful_errors: list[tuple[int, str, str]] = []
    careful = [r for i, doc in enumerate(batch) if (r := careful_row(doc, i, HOT, careful_errors)) is not None]
    assert prepare_rows(batch, EVENTS, fast_errors) == careful
    assert fast_errors == careful_errors
    with patch.object(sqlite_rows, "careful_row", _no_careful_way):
        assert prepare_rows([clean(0)], EVENTS, []) == careful[:1]  # a clean one is never careful


def _no_careful_way(*args: Any) -> None:
    raise AssertionError("went the careful way")


_CLEAN: dict[str, Any] = {
    "source.ip": "10.0.0.1", "destination.ip": "::1", "host.ip": "192.168.1.1", "related.ip": ["10.0.0.1"],
    "source.port": 443, "network.bytes": 12345, "process.pid": 7, "event.risk_score": 0.5,
    "ztsoc.alert.score": 3, "tls.established": True, "event.category": ["network"], "message": "m",
    "user.name": "root", "host.name": "h", "event.dataset": "d", "dns.answers": [{"data": "x"}], "labels": {"a": "b"},
    "custom.thing": {"x": 1}, "winlog.event_data.X": "x",
}


def test_the_shape_cache_is_bounded() -> None:
    """Past the bound, new shapes go the careful way (same rows); the known ones stay fast."""
    docs = [{"@timestamp": "2024-05-01T10:00:00.000Z", "event.id": f"id{i}", f"field{i}": 1} for i in range(60)]
    careful = [careful_row(doc, i, HOT, []) for i, doc in enumerate(docs)]
    with patch.object(sqlite_rows, "MAX_SHAPES", 10), patch.dict(_SHAPES, {}, clear=True):
        errors: list[tuple[int, str, str]] = []
        assert prepare_rows(docs, EVENTS, errors) == careful and not errors
        assert len(_SHAPES[HOT]) == 10
        with patch.object(sqlite_rows, "careful_row", _no_careful_way):
            assert prepare_rows(docs[:10], EVENTS, []) == careful[:10]


def test_shapes_of_one_structure_share_their_compiled_code() -> None:
    """Compiling a shape's source was most of learning it; shapes whose fields have other
    names but the same kinds and positions (EVTX events of two providers) share one compiled
    source and still make each its own rows. The compiled sources are bounded too."""
    a = {"@timestamp": "2024-05-01T10:00:00.000Z", "event.id": "a", "user.name": "u", "winlog.event_data.A": "x"}
    b = {"@timestamp": "2024-05-01T10:00:01.500Z", "event.id": "b", "user.name": "v", "winlog.event_data.B": "y"}
    c = {"@timestamp": "2024-05-01T10:00:02.000Z", "event.id": "c", "host.name": "h", "winlog.event_data.C": "z"}
    d = {"@timestamp": "2024-05-01T10:00:03.000Z", "event.id": "d", "source.ip": "10.0.0.1", "winlog.event_data.D": "w"}
    with patch.dict(_SHAPES, {}, clear=True), patch.dict(sqlite_rows._CODE, {}, clear=True):
        batch = [a, b, c, d]
        assert prepare_rows(batch, EVENTS, []) == [careful_row(doc, i, HOT, []) for i, doc in enumerate(batch)]
        assert len(_SHAPES[HOT]) == 4
        # c fills another hot column (the shape knows which), d holds an address to check
        assert len(sqlite_rows._CODE) == 2
    full = {f"source {i}": None for i in range(3)}  # what another layout's shapes left, at the bound
    with patch.object(sqlite_rows, "MAX_SHAPES", 3), patch.dict(_SHAPES, {}, clear=True), \
            patch.dict(sqlite_rows._CODE, full, clear=True):
        assert prepare_rows([a], EVENTS, []) == [careful_row(a, 0, HOT, [])]
        assert list(sqlite_rows._CODE.values()) != [None] and len(sqlite_rows._CODE) == 1


def test_other_types_under_the_same_keys() -> None:
    """The same keys holding another type in a field the row looks at (a port as text, a time
    as epoch millis, an address missing) are another shape, learnt beside the first: every
    document gets the careful row or refusal, and each learnt shape's documents stay fast."""
    base = {"@timestamp": "2024-05-01T10:00:00.000Z", "event.id": "e", "source.ip": "10.0.0.1", "source.port": 443,
            "user.name": "root", "message": "m"}
    fast = [{}, {"source.port": "443"}, {"@timestamp": 1714557600000}, {"source.port": None}, {"source.ip": None},
            {"message": None}]
    careful_only = [{"user.name": ["root", "x"]}, {"user.name": {"a": 1}}, {"source.port": True}, {"event.id": 7},
                    {"source.port": "x"}, {"@timestamp": "2024-05-01T10:00:00+02:00"}]
    batch = [{**base, "event.id": f"e{i}", **change} for i, change in enumerate((fast + careful_only) * 2)]
    careful_errors: list[tuple[int, str, str]] = []
    careful = [r for i, doc in enumerate(batch) if (r := careful_row(doc, i, HOT, careful_errors)) is not None]
    with patch.dict(_SHAPES, {}, clear=True):
        errors: list[tuple[int, str, str]] = []
        assert prepare_rows(batch, EVENTS, errors) == careful
        assert errors == careful_errors and len(errors) == 8
        again = [{**base, "event.id": f"f{i}", **change} for i, change in enumerate(fast)]
        with patch.object(sqlite_rows, "careful_row", _no_careful_way):
            assert prepare_rows(again, EVENTS, []) == [careful_row(doc, 0, HOT, []) for doc in again]


def test_equal_keys_that_are_other_objects() -> None:
    """A shape reads fields with the key objects of the document it was learnt from: documents
    whose keys are equal strings but other objects (another producer, a fresh parse) still get
    the careful row, the fast way, in the row and in the nested-object check."""
    first = {"@timestamp": "2024-05-01T10:00:00.000Z", "event.id": "e0", "event.dataset": "network.dns",
             "source.ip": "10.0.0.1", "dns.question.name": "a.example", "dns.answers": [{"data": "10.0.0.2"}]}
    others = [{"".join(key): value for key, value in first.items()} | {"event.id": f"e{i}"} for i in range(1, 4)]
    others[2]["dns.question.name"] = {"nested": "refused"}
    assert all(a == b and a is not b for a, b in zip(first, others[0], strict=True))
    careful_errors: list[tuple[int, str, str]] = []
    careful = [r for i, doc in enumerate([first, *others]) if (r := careful_row(doc, i, HOT, careful_errors))]
    with patch.dict(_SHAPES, {}, clear=True):
        errors: list[tuple[int, str, str]] = []
        assert prepare_rows([first], EVENTS, errors) == careful[:1]
        with patch.object(sqlite_rows, "careful_row", _no_careful_way):
            assert prepare_rows(others[:2], EVENTS, errors) == careful[1:] and not errors
        assert prepare_rows(others[2:], EVENTS, errors, 3) == [] and errors == careful_errors
        assert len(errors) == 1 and "dns.question.name" in errors[0][2]
