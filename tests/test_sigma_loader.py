"""Loading rules from the shipped folder and the user's: every unusable rule with its reason."""

from __future__ import annotations

from pathlib import Path

from detections.sigma.engine import compile_ruleset
from detections.sigma.loader import load_rules

GOOD = """
title: good
name: good_rule
id: 3c1e2d4f-0000-4000-8000-000000000001
logsource: {product: ztsoc, service: auth}
detection:
  sel: {event.outcome: failure}
  condition: sel
level: low
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_user_folders_load_beside_the_shipped_rules(tmp_path) -> None:
    _write(tmp_path / "mine", "good.yml", GOOD)
    both = load_rules([tmp_path / "mine"])
    only = load_rules([tmp_path / "mine"], shipped=False)
    assert [r.key for r in only.rules] == ["good_rule"]
    assert len(both.rules) == len(load_rules().rules) + 1
    assert both.find("good_rule").path.name == "good.yml"


def test_every_broken_rule_is_reported_with_its_reason(tmp_path) -> None:
    d = tmp_path / "bad"
    _write(d, "good.yml", GOOD)
    _write(d, "yaml.yml", "title: [unclosed\n")
    _write(d, "nodetection.yml", "title: x\nid: 3c1e2d4f-0000-4000-8000-000000000002\nlogsource: {product: x}\n")
    _write(d, "badcond.yml", GOOD.replace("condition: sel", "condition: sel and missing").replace("good_rule", "bc")
           .replace("000000000001", "000000000003"))
    _write(d, "dangling.yml", """
title: corr
id: 3c1e2d4f-0000-4000-8000-000000000004
correlation: {type: event_count, rules: [nowhere], group-by: [source.ip], timespan: 5m, condition: {gte: 3}}
""")
    _write(d, "regex.yml", GOOD.replace("event.outcome: failure", "user.name|re: '('").replace("good_rule", "rx")
           .replace("000000000001", "000000000005"))
    rs = load_rules([d], shipped=False)
    cs = compile_ruleset(rs)
    by_file = {Path(p.path).name: p for p in cs.problems}
    assert set(by_file) == {"yaml.yml", "nodetection.yml", "badcond.yml", "dangling.yml", "regex.yml"}
    assert all(p.reason for p in cs.problems)
    assert by_file["dangling.yml"].stage == "resolve" and "nowhere" in by_file["dangling.yml"].reason
    assert by_file["badcond.yml"].stage == "compile"
    assert list(cs.rules) == ["good_rule"]  # the good rule still works


def test_missing_folder_is_an_error(tmp_path) -> None:
    import pytest

    with pytest.raises(ValueError, match="not found"):
        load_rules([tmp_path / "nope"])


def test_custom_block_is_read() -> None:
    r = load_rules().find("service_first_call")
    assert r.meta.baseline_fields == ("user.name", "service.name")
    assert r.meta.baseline_learn == 7 * 86400
    assert r.meta.suppress == 86400
    assert r.meta.guide and r.meta.response


def test_rule_files_are_what_rglob_finds(tmp_path: Path) -> None:
    """Listed from directory entries, the same files in the same order as ``sorted(rglob("*"))``
    filtered by suffix: nested folders, a symlinked folder (not entered) and file (followed), a
    folder named like a rule, a file named only ``.yml``, other suffixes, a dangling link."""
    from detections.sigma.loader import rule_files

    root = tmp_path / "rules"
    for rel in ("a.yml", "b.yaml", "c.YML", "d.txt", ".yml", "x/y.yml", "x-y/z.yml", "x/deep/w.yaml", "a.b.yml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("title: t\n")
    (root / "folder.yml").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.yml").write_text("title: o\n")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "file-link.yml").symlink_to(outside / "o.yml")
    (root / "dangling.yml").symlink_to(tmp_path / "nowhere.yml")
    expected = [(p, False) for p in sorted(root.rglob("*")) if p.suffix in (".yml", ".yaml") and p.is_file()]
    assert rule_files([root]) == expected
    assert [p.name for p, _ in expected] == ["a.b.yml", "a.yml", "b.yaml", "file-link.yml", "w.yaml", "y.yml", "z.yml"]
