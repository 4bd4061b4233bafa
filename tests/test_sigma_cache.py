"""The compiled-rule cache: same matches as a fresh compile, rebuilt whenever anything it came from changes."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detections.sigma.cache import load_compiled_cached
from detections.sigma.engine import evaluate
from detections.sigma.ir import tree_in, tree_out
from detections.sigma.matcher import compile_trees
from detections.sigma.samples import expand
from tests.test_sigma_matcher import SEMANTICS, _compiled

SIGMAHQ = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "sigma" / "rules" / "windows"


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _sample_events() -> list[dict]:
    """Every shipped rule's match and near-miss samples: events the rules were written for."""
    rs, _, _ = load_compiled_cached(use_cache=False)
    events: list[dict] = []
    for r in rs.rules:
        for kind in ("match", "near_miss"):
            templates = r.meta.samples.get(kind) or []
            if templates:
                events += expand(templates, prefix=f"{r.key}-{kind}")
    return events


def test_cached_set_matches_and_alerts_as_a_fresh_compile() -> None:
    events = _sample_events()
    assert len(events) > 50
    _, fresh, info = load_compiled_cached(use_cache=False)
    assert not info.hit and not info.written
    info1 = load_compiled_cached()[2]
    _, cached, info2 = load_compiled_cached()
    assert (info1.hit, info1.written, info2.hit) == (False, True, True)
    assert {cr.key: cr.ir for cr in cached.base} == {cr.key: cr.ir for cr in fresh.base}
    assert sorted(cached.rules) == sorted(fresh.rules) and cached.generating == fresh.generating
    assert cached.specs == fresh.specs and cached.margin == fresh.margin
    assert cached.infos == fresh.infos and cached.problems == fresh.problems

    def matches(cs) -> set[tuple[str, str]]:
        return {(r.key, e["event.id"]) for e in events for r in cs.matcher.match(e)}

    assert matches(cached) == matches(fresh) != set()
    alerts = {a["event.id"] for a in evaluate(cached, sorted(events, key=lambda e: e["@timestamp"]))[0]}
    assert alerts == {a["event.id"] for a in evaluate(fresh, sorted(events, key=lambda e: e["@timestamp"]))[0]}


def test_a_changed_rule_file_is_another_set(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    rule = rules / "r.yml"
    rule.write_text("title: t\nid: 11111111-2222-4333-8444-555555555555\nlogsource: {product: ztsoc, service: auth}\n"
                    "detection:\n  sel: {user.name: root}\n  condition: sel\n")
    _, cs1, i1 = load_compiled_cached([rules], shipped=False)
    assert cs1.matcher.match({"event.dataset": "system.auth", "user.name": "ROOT"})
    rule.write_text(rule.read_text().replace("root", "admin"))
    _, cs2, i2 = load_compiled_cached([rules], shipped=False)
    assert i2.key != i1.key and not i2.hit
    assert not cs2.matcher.match({"event.dataset": "system.auth", "user.name": "root"})
    assert cs2.matcher.match({"event.dataset": "system.auth", "user.name": "admin"})


@pytest.mark.parametrize("damage", [
    b"", b"\x00\xff garbage", b"[]", b'{"format": 2, "key": "another"}', b'{"format": 1, "key": "@KEY@"}',
    b'{"format": 2, "key": "@KEY@", "rules": [{"path": "/etc/passwd"}]}',
    b'{"format": 2, "key": "@KEY@", "rules": [], "load_problems": [], "problems": [], "base": [{"key": "x", '
    b'"rule": 99, "trees": [{"f": "user.name", "v": {"t": "exec"}}]}]}',
    b"[" * 100_000,
])
def test_a_damaged_or_foreign_cache_is_rebuilt_not_trusted(damage: bytes) -> None:
    _, fresh, info = load_compiled_cached()
    info.path.write_bytes(damage.replace(b"@KEY@", info.key.encode()))
    _, again, info2 = load_compiled_cached()
    assert not info2.hit and info2.written  # rebuilt and rewritten
    assert sorted(again.rules) == sorted(fresh.rules)
    assert orjson.loads(info2.path.read_bytes())["key"] == info.key


def test_a_cache_with_a_damaged_rule_info_is_rebuilt() -> None:
    """Rule infos are made when first asked for; their shape is checked when the cache is read."""
    _, fresh, info = load_compiled_cached()
    doc = orjson.loads(info.path.read_bytes())
    key = next(iter(doc["infos"]))
    del doc["infos"][key]["title"]
    info.path.write_bytes(orjson.dumps(doc))
    _, again, info2 = load_compiled_cached()
    assert not info2.hit and info2.written
    assert again.infos[key] == fresh.infos[key] and len(again.infos) == len(fresh.infos)


def test_rule_metadata_round_trips_with_and_without_a_ztsoc_block(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    head = "logsource: {product: ztsoc, service: auth}\ndetection:\n  sel: {user.name: root}\n  condition: sel\n"
    (rules / "plain.yml").write_text("title: plain\nid: 11111111-2222-4333-8444-555555555555\n" + head)
    (rules / "guided.yml").write_text("title: guided\nid: 11111111-2222-4333-8444-666666666666\n" + head
                                      + "ztsoc:\n  guide: look at the host\n  suppress: 1m\n")
    fresh, _, _ = load_compiled_cached([rules], shipped=False, use_cache=False)
    load_compiled_cached([rules], shipped=False)
    cached, cs, info = load_compiled_cached([rules], shipped=False)
    assert info.hit
    assert [(r.path, r.meta) for r in cached.rules] == [(r.path, r.meta) for r in fresh.rules]
    assert {r.meta.guide for r in cached.rules} == {None, "look at the host"}
    assert cs.infos["11111111-2222-4333-8444-666666666666"].guide == "look at the host"


def test_unwritable_cache_folder_costs_speed_not_correctness(_cache_dir: Path) -> None:
    _cache_dir.parent.mkdir(parents=True, exist_ok=True)
    _cache_dir.write_text("a file where the folder should be")
    _, cs, info = load_compiled_cached()
    assert not info.hit and not info.written and cs.rules


@pytest.mark.parametrize(("detection", "doc", "expected"), SEMANTICS)
def test_every_value_type_survives_the_cache_format(detection: str, doc: dict, expected: bool) -> None:
    """The matcher's semantics table, compiled from the JSON form of each processed tree."""
    cr = _compiled(detection)
    ir = orjson.loads(orjson.dumps(cr.ir))
    assert [tree_out(tree_in(t)) for t in ir] == cr.ir == [tree_out(t) for t in cr.trees]  # pySigma's objects again
    again = compile_trees(cr.key, ir)
    assert again.matches({"event.dataset": "system.auth", **doc}) is expected
    assert again.required == cr.required and again.anchors == cr.anchors


@pytest.mark.skipif(not SIGMAHQ.is_dir(), reason="../shared/data/sigma is not here")
def test_sigmahq_windows_set_round_trips() -> None:
    """Every processed tree of SigmaHQ's Windows rules is written and read back to the same index entries."""
    _, cs, _ = load_compiled_cached([SIGMAHQ], use_cache=False)
    assert len(cs.base) > 2000
    for cr in cs.base:
        ir = orjson.loads(orjson.dumps(cr.ir))
        assert [tree_out(tree_in(t)) for t in ir] == cr.ir, cr.key
        again = compile_trees(cr.key, ir)
        assert (again.required, again.anchors) == (cr.required, cr.anchors), cr.key



def test_a_cached_rule_parses_its_trees_only_when_it_meets_an_event() -> None:
    """Most rules of a large set meet no event in a run: their trees stay JSON text (a third of
    the memory of reading SigmaHQ's set when they were parsed up front)."""
    load_compiled_cached()
    _, cs, info = load_compiled_cached()
    assert info.hit
    assert all(isinstance(cr._ir, str) for cr in cs.base)
    events = _sample_events()
    met = {r.key for e in events for r in cs.matcher.match(e)}
    assert met and all(isinstance(cr._ir, list) for cr in cs.base if cr.key in met)
    _, fresh, _ = load_compiled_cached(use_cache=False)
    assert {cr.key: cr.ir for cr in cs.base} == {cr.key: cr.ir for cr in fresh.base}


def _one_rule(folder: Path, user: str) -> Path:
    folder.mkdir(exist_ok=True)
    rule = folder / "r.yml"
    rule.write_text("title: t\nid: 11111111-2222-4333-8444-555555555555\nlogsource: {product: ztsoc, service: auth}\n"
                    f"detection:\n  sel: {{user.name: {user}}}\n  condition: sel\n")
    return rule


def test_remembered_digests_give_the_same_key_and_a_rewrite_is_seen(tmp_path: Path, _cache_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A file's digest is reused while its stat is unchanged; a same-size rewrite whose modification
    time is put back still changes the change time, so it is hashed again (git's index does the same)."""
    import os

    from detections.sigma import cache

    monkeypatch.setattr(cache, "_RACY_NS", -1)  # remember even a file written just now
    rule = _one_rule(tmp_path / "rules", "root")
    files = [(rule, False)]
    key = cache.fingerprint(files, "ztsoc")
    memo = orjson.loads((_cache_dir / "sigma" / cache.STAT_MEMO).read_bytes())
    assert list(memo) == [str(rule)]
    assert cache.fingerprint(files, "ztsoc") == key  # from the memo
    (_cache_dir / "sigma" / cache.STAT_MEMO).write_bytes(b"\x00 not json")  # a damaged memo is ignored
    assert cache.fingerprint(files, "ztsoc") == key
    before = os.stat(rule)
    rule.write_text(rule.read_text().replace("root", "adm1"))  # same size
    os.utime(rule, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same modification time
    assert os.stat(rule).st_size == before.st_size and os.stat(rule).st_mtime_ns == before.st_mtime_ns
    _, cs, info = load_compiled_cached([rule.parent], shipped=False)
    assert info.key != key and not info.hit
    assert cs.matcher.match({"event.dataset": "system.auth", "user.name": "adm1"})


def test_installed_versions_agree_with_importlib_metadata() -> None:
    import importlib.metadata

    from detections.sigma.cache import installed_versions

    names = ("pysigma", "pysigma-pipeline-windows", "orjson", "no-such-distribution-here")
    found = installed_versions(names)
    assert found["no-such-distribution-here"] == "none"
    assert {n: found[n] for n in names[:3]} == {n: importlib.metadata.version(n) for n in names[:3]}


def test_a_file_written_just_now_is_not_remembered(tmp_path: Path, _cache_dir: Path) -> None:
    from detections.sigma import cache

    rule = _one_rule(tmp_path / "rules", "root")
    cache.fingerprint([(rule, False)], "ztsoc")
    assert not (_cache_dir / "sigma" / cache.STAT_MEMO).exists()  # within two seconds of its last change
