"""The query parser's bounds: nesting depth, length and clause count are refused as bad queries
(``QuerySyntaxError`` naming the position), never a RecursionError, and every query within them
compiles to SQL that SQLite parses (its fixed parser stack and expression-depth limit).

Generated queries go through the parser, through a real SQLite store, and through the real ``soc``
command (a subprocess): exit code 2 and the bad-query message, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import open_store
from eventstore.errors import QuerySyntaxError, StoreError
from eventstore.query import parse
from eventstore.query.lucene import MAX_CLAUSES, MAX_DEPTH, MAX_QUERY_CHARS, MAX_WORDS
from eventstore.query.lucene_regex import MAX_DEPTH as MAX_REGEX_DEPTH
from eventstore.store import Store

SOC = [sys.executable, "-m", "soc_cli.main"]

#: one level of nesting around the inner query ``x``: every way the translator and the SQL builder
#: wrap a level (optional, required, excluded, text tokens, CIDR blocks, field groups)
LEVELS: tuple[Callable[[str], str], ...] = (
    lambda x: f"(user.name:a OR {x})",
    lambda x: f"(user.name:a AND {x})",
    lambda x: f"(NOT {x})",
    lambda x: f"(user.name:a AND NOT {x})",
    lambda x: f"(user.name:a OR -{x})",
    lambda x: f"(user.name:a OR user.name:b AND -{x})",
    lambda x: f'(source.ip:"10.0.0.0/8" OR {x})',
    lambda x: f"(foo bar OR {x})",
    lambda x: f"({x} OR process.name:a AND host.name:b)",
    lambda x: f"(+{x} -event.code:4625)",
    lambda x: f"({x})",
)
LEAVES = ("user.name:a", 'source.ip:"10.0.0.0/8"', "message:(foo bar baz)", "process.name:a*",
          "dns.answers.data:x", "@timestamp:[now-1d TO now]", "event.code:>=4", "message:/fo[a-z]+/")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path_factory.mktemp('bounds') / 's.db'}")
    # an array in a hot field: the builder's fallback to the document (the deepest leaf SQL)
    s.write_events([{"@timestamp": "2026-01-01T00:00:00Z", "event.id": "e1", "user.name": ["a", "b"],
                     "source.ip": ["10.0.0.1", "10.0.0.2"], "message": "foo bar", "process.name": "ab"}])
    yield s
    s.close()


def _nest(leaf: str, levels: list[int]) -> str:
    query = leaf
    for i in levels:
        query = LEVELS[i](query)
    return query


def _depth_at(query: str) -> int | None:
    """Where the first "(" deeper than MAX_DEPTH opens (outside phrases, regexes and ranges)."""
    depth, in_regex, in_quote = 0, False, False
    for i, ch in enumerate(query):
        if ch == '"' and not in_regex:
            in_quote = not in_quote
        elif ch == "/" and not in_quote:
            in_regex = not in_regex
        elif not (in_quote or in_regex):
            if ch == "(":
                depth += 1
                if depth > MAX_DEPTH:
                    return i
            elif ch == ")":
                depth -= 1
    return None


levels = st.lists(st.integers(0, len(LEVELS) - 1), min_size=0, max_size=MAX_DEPTH + 40)


@given(leaf=st.sampled_from(LEAVES), shape=levels)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_nesting_is_bounded_and_what_parses_runs_on_sqlite(store: Store, leaf: str, shape: list[int]) -> None:
    query = _nest(leaf, shape)
    too_deep = _depth_at(query)
    if too_deep is not None:
        with pytest.raises(QuerySyntaxError) as raised:
            store.search(query, limit=1)
        assert raised.value.position == too_deep
        assert raised.value.reason == f"parentheses nested more than {MAX_DEPTH} deep"
        return
    parse(query)
    try:  # within the bound: the SQL compiles and runs (no "parser stack overflow", no expression depth)
        store.search(query, limit=1)
        store.count(query)
    except StoreError as exc:
        pytest.fail(f"{query!r} parsed but SQLite refused its SQL: {exc}")


#: characters that build structure (and the odd ones around it) for free-form generated queries
NOISE = st.text(alphabet='()!+-&|:"/[]{}~^*? \\aAx1.', max_size=4000)


@given(text=NOISE, prefix=st.integers(0, 3000))
@settings(max_examples=300, deadline=None)
def test_generated_queries_raise_nothing_but_the_query_error(text: str, prefix: int) -> None:
    for query in (text, "(" * prefix + text, "/" + "(" * (prefix % 200) + "a/", "!" * prefix + "a",
                  "a" + "*" * prefix, "-(" * prefix + "a"):
        try:
            parse(query)
        except QuerySyntaxError as exc:
            assert exc.position is None or 0 <= exc.position <= len(query)


@given(depth=st.integers(1, 300), op=st.sampled_from("(~*"))
@settings(max_examples=100, deadline=None)
def test_regex_nesting_is_bounded(depth: int, op: str) -> None:
    body = {"(": "(" * depth + "a" + ")" * depth, "~": "~" * depth + "a", "*": "a" + "*" * depth}[op]
    if depth <= MAX_REGEX_DEPTH:
        parse(f"process.name:/{body}/")
        parse(f"message:/{body}/")
        return
    with pytest.raises(QuerySyntaxError, match=f"nested more than {MAX_REGEX_DEPTH} deep"):
        parse(f"process.name:/{body}/")


def test_length_and_clause_count_are_bounded(store: Store) -> None:
    longest = "a" * MAX_QUERY_CHARS
    parse(longest)
    with pytest.raises(QuerySyntaxError) as raised:
        parse(longest + "a")
    assert raised.value.position == MAX_QUERY_CHARS
    assert raised.value.reason == f"query longer than {MAX_QUERY_CHARS} characters"
    words = "x:a " * MAX_WORDS  # more clauses than Lucene allows: refused before luqum reads them all
    with pytest.raises(QuerySyntaxError, match=f"more than {MAX_CLAUSES} clauses"):
        parse(words)
    with pytest.raises(QuerySyntaxError) as raised:
        parse(words + "x:b")
    assert raised.value.position == len(words) and raised.value.reason == f"more than {MAX_WORDS} words and operators"
    # as many clauses as Lucene allows run on SQLite (a chain of 1,000 terms exceeded its expression depth)
    for query in (" OR ".join(f"user.name:a{i}" for i in range(MAX_CLAUSES)),
                  " AND ".join(f"process.name:a{i}" for i in range(MAX_CLAUSES)),
                  " ".join(f"-user.name:a{i}" for i in range(MAX_CLAUSES)),
                  " ".join(f"w{i}" for i in range(MAX_CLAUSES))):
        store.search(query, limit=1)
        with pytest.raises(QuerySyntaxError, match=f"more than {MAX_CLAUSES} clauses"):
            parse(query + " OR user.name:z")


def _soc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOC, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})


@pytest.mark.parametrize("query, reason", [
    ("(" * 3000 + "a" + ")" * 3000, f"parentheses nested more than {MAX_DEPTH} deep"),
    ("rule.name:" + "(" * 3000 + "a" + ")" * 3000, f"parentheses nested more than {MAX_DEPTH} deep"),
    ("user.name:/" + "(" * 3000 + "a" + ")" * 3000 + "/", f"nested more than {MAX_REGEX_DEPTH} deep"),
    ("a " * 60_000, f"query longer than {MAX_QUERY_CHARS} characters"),
])
def test_the_cli_reports_a_bad_query(tmp_path: Path, query: str, reason: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    for args in (["hunt", query], ["alerts", "--query", query]):
        out = _soc("--store", url, *args)
        assert out.returncode == 2, (args[0], out.stderr[-2000:])
        assert "Traceback" not in out.stderr and "RecursionError" not in out.stderr
        first = out.stderr.splitlines()[0]
        assert first.startswith("error: bad query at position ") and reason in first, first[:300]
