"""The Lucene query string means the same on both stores: Elasticsearch is the reference.

Seeded documents (``tests.lucenegen``) are written to a SQLite store and to a real node; random
query strings over the whole syntax are asked of both. Same total, same ids, or both refuse
the query (``QuerySyntaxError``: ``soc`` exits 2 with the reason); a query one store answers
and the other refuses is a mismatch too, so a refusal never turns into a silent zero.

``make test`` asks 150 queries (about 10 s); ``SOC_LUCENE_QUERIES=2000`` asks more, and
``SOC_LUCENE_SEED`` picks another seed. Every mismatch is printed with both answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import Store, open_store
from eventstore.errors import QuerySyntaxError, StoreError
from tests.conftest import es_store_url
from tests.lucenegen import documents, queries

pytestmark = pytest.mark.es

SEED = int(os.environ.get("SOC_LUCENE_SEED", "1"))
COUNT = int(os.environ.get("SOC_LUCENE_QUERIES", "150"))


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store, list[dict]]]:
    docs = documents(SEED)
    es = open_store(es_store_url())
    sqlite = open_store(f"sqlite:///{Path(tmp_path_factory.mktemp('lucene')) / 'soc.db'}")
    try:
        for store in (es, sqlite):
            assert not store.write_events(docs).errors
        yield es, sqlite, docs
    finally:
        es.drop()  # type: ignore[attr-defined]
        es.close()
        sqlite.close()


def _answer(store: Store, query: str) -> tuple[str, object]:
    try:
        result = store.search(query, limit=1000, sort="event.id")
    except QuerySyntaxError:
        return ("refused", None)
    except StoreError as exc:
        return ("error", str(exc)[:200])
    return ("ok", (result.total, sorted(str(h["event.id"]) for h in result.hits)))


def test_random_queries_same_answers(stores: tuple[Store, Store, list[dict]]) -> None:
    es, sqlite, docs = stores
    asked = queries(SEED, docs, COUNT)
    mismatches = []
    answered = 0
    for query in asked:
        reference, mine = _answer(es, query), _answer(sqlite, query)
        answered += reference[0] == "ok"
        if reference != mine:
            ref = reference[1][0] if reference[0] == "ok" else reference  # type: ignore[index]
            got = mine[1][0] if mine[0] == "ok" else mine  # type: ignore[index]
            mismatches.append(f"{query!r}: elasticsearch {ref}, sqlite {got}")
    print(f"{len(mismatches)} mismatches in {len(asked)} queries ({answered} answered by Elasticsearch)")
    assert not mismatches, "\n".join(mismatches)
    assert answered > len(asked) // 2  # most queries parse: this is not only a test of refusals


@pytest.mark.parametrize("query", ["NOT NOT user.name:alice", "source.ip:10.0.0.0/8", "@timestamp:now-7d/d",
                                   "user.name:/a\\Tb/", "@timestamp:2020-06-01T12:00:00"])
def test_refused_the_same_way_by_soc(stores: tuple[Store, Store, list[dict]], query: str) -> None:
    """What Elasticsearch refuses, ``soc hunt`` refuses on both stores: exit 2, one line, no output."""
    import subprocess
    import sys

    es, sqlite, _ = stores
    for url in (es.url, sqlite.url):  # type: ignore[attr-defined]
        run = subprocess.run([sys.executable, "-m", "soc_cli.main", "hunt", query, "--since", "3650d", "--json"],
                             capture_output=True, text=True, env={**os.environ, "SOC_STORE": url}, timeout=120)
        assert run.returncode == 2 and run.stdout == "", (url, run.stdout, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: bad query"), (url, run.stderr)
