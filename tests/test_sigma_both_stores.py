"""Sigma on both stores gives identical alerts: generated Windows corpus, and SigmaHQ over real EVTX.

The embedded engine (SQLite) is the reference; Elasticsearch runs ``es_dsl``'s queries in the
cluster and confirms each hit with the same predicate. Same alert ids, entities, first/last
seen and evidence on both sides, or the test prints every difference.

- always: a generated corpus (``tests.sigmadiff``: EVTX written and read back, rules drawn from
  the same values with the case changed at random, every modifier);
- when ``../shared/data`` is present: a fixed sample of SigmaHQ's ``rules/windows`` over a
  sample of ``evtx-attack-samples`` (the whole set: ``compat/sigma_both_stores.py``).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from detections.sigma.engine import compile_ruleset
from detections.sigma.loader import load_rules
from tests.conftest import ES_URL
from tests.sigmadiff import compare, generated_corpus

pytestmark = pytest.mark.es
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _es_url() -> str:
    if not ES_URL:
        pytest.skip("SOC_TEST_ES_URL is not set")
    return ES_URL


def test_generated_windows_corpus(tmp_path: Path) -> None:
    rules_dir, events = generated_corpus(7, tmp_path, events=1000, rules=200)
    cs = compile_ruleset(load_rules([rules_dir], shipped=False))
    assert len(cs.base) >= 180, cs.problems[:5]
    result = compare(cs, events, _es_url(), tmp_path / "soc.db")
    assert not result.differences, "\n".join(result.differences[:20])
    assert len(result.sqlite) >= 80  # the rules do fire: the comparison is not between two empty sets
    assert len({v[0] for v in result.sqlite.values()}) >= 30


def _sample(items: list[Path], n: int, root: Path) -> list[Path]:
    """A fixed sample (by digest of the relative path): the same files on every machine."""
    return sorted(items, key=lambda p: hashlib.sha1(str(p.relative_to(root)).encode()).hexdigest())[:n]


@pytest.mark.skipif(not (DATA / "sigma" / "rules" / "windows").is_dir(), reason="no ../shared/data/sigma")
def test_sigmahq_windows_sample(tmp_path: Path) -> None:
    from bench.sigma import read_events

    samples = DATA / "evtx-attack-samples"
    events = read_events(_sample(sorted(samples.rglob("*.evtx")), 120, samples))
    windows = DATA / "sigma" / "rules" / "windows"
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for n, path in enumerate(_sample(sorted(windows.rglob("*.yml")), 600, windows)):
        shutil.copy(path, rules_dir / f"{n:03d}_{path.name}")
    cs = compile_ruleset(load_rules([rules_dir], shipped=False))
    result = compare(cs, events, _es_url(), tmp_path / "soc.db")
    assert not result.differences, "\n".join(result.differences[:20])
    assert len(result.sqlite) >= 10, result.table()
