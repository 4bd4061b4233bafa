"""A mapping naming the same key twice is refused by every YAML the product reads.

``eventstore.yamlfile`` is the one check (libyaml's loader and the pure-Python one); each
loader that uses it is exercised here with a real file: Sigma rules (``soc rules validate``
lists the problem, the file's other documents and the other files still load), exercises and
their overlays, response playbooks, trust files (identities and proxies), sample events and
investigation guides. Policy files have their own line-keeping reader, which refuses them too
(``tests/test_policy_language.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detections.sigma.loader import load_file, load_rules, rule_documents
from eventstore.yamlfile import (
    STRICT_LOADER,
    DuplicateKeyError,
    StrictPyLoader,
    _NoDuplicates,
    documents,
    each_document,
    load,
)

RULE = """title: {title}
id: 3c1e2d4f-0000-4000-8000-0000000001{n:02d}
logsource: {{product: linux, service: auth}}
detection:
  sel:
    process.name: sshd
  filter:
    user.name: backup
  condition: sel and not filter
{extra}level: high
"""


def _rule(n: int, title: str, extra: str = "") -> str:
    return RULE.format(n=n, title=title, extra=extra)


@pytest.mark.parametrize("pure", [False, True], ids=["libyaml", "python"])
def test_a_key_twice_is_refused_with_both_places(pure: bool) -> None:
    text = "a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n"
    (refused,) = documents(text, pure=pure)
    assert isinstance(refused, DuplicateKeyError) and isinstance(refused, yaml.YAMLError)
    assert refused.key == "c" and refused.problem == "duplicate key 'c' (first at 3:3)"
    assert refused.problem_mark is not None
    assert (refused.problem_mark.line + 1, refused.problem_mark.column + 1) == (5, 3)
    with pytest.raises(DuplicateKeyError, match="duplicate key 'c'"):
        load(text)


@pytest.mark.parametrize("text, key", [
    ("1: a\n0x1: b\n", 1),          # equal once constructed: the program would keep one
    ("yes: 1\ntrue: 2\n", True),
    ("[{a: 1, b: 2, a: 1}]", "a"),  # the same value twice is still a key twice
    ("m: {<<: {x: 1}, y: 1, y: 2}\n", "y"),
    ("base: &b {x: 1, x: 2}\nm: {<<: *b}\n", "x"),  # under a merged mapping: that mapping's own
])
def test_what_counts_as_a_duplicate(text: str, key: object) -> None:
    for pure in (False, True):
        (refused,) = documents(text, pure=pure)
        assert isinstance(refused, DuplicateKeyError) and refused.key == key


@pytest.mark.parametrize("text", [
    "base: &b {x: 1, y: 2}\nm: {<<: *b, x: 3}\n",              # a key of the mapping overrides a merged one
    "a: &a {x: 1}\nb: &b {x: 2}\nc: {<<: [*a, *b]}\n",         # merged mappings sharing a key
    "a: &a {x: 1}\nb: &b {<<: *a, x: 2}\nc: {<<: *b, z: 1}\n",  # a merge of a merge
    "a: {x: 1}\nb: {x: 1}\n",                                  # the same key in two mappings
])
def test_merge_keys_are_not_duplicates(text: str) -> None:
    for pure in (False, True):
        assert documents(text, pure=pure) == [yaml.safe_load(text)]


def test_the_other_documents_of_a_file_are_kept() -> None:
    docs = documents("a: 1\n---\nb: 1\nb: 2\n---\nc: &x {d: 1}\ne: *x\n")
    assert docs[0] == {"a": 1} and isinstance(docs[1], DuplicateKeyError) and docs[2] == {"c": {"d": 1}, "e": {"d": 1}}
    assert STRICT_LOADER is not StrictPyLoader  # libyaml is the loader here (PyYAML built with it)


def test_a_rule_with_two_conditions_is_a_problem_and_the_rest_loads(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    hidden = _rule(1, "hidden clause", extra="").replace("  condition: sel and not filter\n",
                                                           "  condition: sel and not filter\n  condition: sel\n")
    (rules / "a.yml").write_text(hidden + "---\n" + _rule(2, "second in the file"), encoding="utf-8")
    (rules / "b.yml").write_text(_rule(3, "another file"), encoding="utf-8")
    loaded, problems = load_file(rules / "a.yml")
    assert [str(r.title) for r in loaded] == ["second in the file"]
    (problem,) = problems
    assert problem.path == str(rules / "a.yml") and problem.stage == "load"
    assert problem.reason == "DuplicateKeyError: 10:3: duplicate key 'condition' (first at 9:3)"
    rs = load_rules([rules], shipped=False)
    assert sorted(r.title for r in rs.rules) == ["another file", "second in the file"]
    assert [p.reason for p in rs.problems] == [problem.reason]
    assert [d["title"] for d in rule_documents([rules], shipped=False)] == ["second in the file", "another file"]


def test_a_refused_document_of_a_collection_refuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "collection.yml"
    path.write_text("action: global\ntitle: t\ntitle: u\n---\n" + _rule(4, "depends on the global"), encoding="utf-8")
    loaded, problems = load_file(path)
    assert loaded == [] and [p.reason.split(":")[0] for p in problems] == ["DuplicateKeyError", "ValueError"]


def test_rules_validate_lists_it(tmp_path: Path) -> None:
    (tmp_path / "dup.yml").write_text(_rule(5, "dup", extra="level: low\n"), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "soc_cli.main", "rules", "validate", "--no-shipped",
                          "--rules", str(tmp_path), "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    (problem,) = json.loads(out.stdout)
    assert problem["path"] == str(tmp_path / "dup.yml")
    assert problem["reason"] == "DuplicateKeyError: 11:1: duplicate key 'level' (first at 10:1)"
    shown = subprocess.run([sys.executable, "-m", "soc_cli.main", "rules", "validate", "--no-shipped",
                            "--rules", str(tmp_path)], capture_output=True, text=True, timeout=300,
                           env={**__import__("os").environ, "SOC_LANG": "vi", "COLUMNS": "300"})
    assert "khóa trùng lặp 'level' (lần đầu ở 10:1)" in " ".join(shown.stdout.split()), shown.stdout


def test_exercises_and_overlays_refuse_it(tmp_path: Path) -> None:
    from playbooks.exercise import SHIPPED, ExerciseError, load_exercise

    text = (SHIPPED / "dns-tunnel.yml").read_text(encoding="utf-8")
    bad = tmp_path / "dns-tunnel.yml"
    bad.write_text(text.replace("difficulty: intermediate\n", "difficulty: intermediate\ndifficulty: advanced\n"),
                   encoding="utf-8")
    with pytest.raises(ExerciseError, match="duplicate key 'difficulty'"):
        load_exercise(bad, lang="en")
    bad.write_text(text, encoding="utf-8")
    (tmp_path / "vi").mkdir()
    (tmp_path / "vi" / "dns-tunnel.yml").write_text("id: dns-tunnel\ntitle: a\ntitle: b\n", encoding="utf-8")
    with pytest.raises(ExerciseError, match="duplicate key 'title'"):
        load_exercise(bad, lang="vi")


def test_response_playbooks_refuse_it(tmp_path: Path) -> None:
    from playbooks.response import load_response

    shipped = Path(__file__).resolve().parent.parent / "playbooks" / "response" / "ssh-brute-force-contain.yml"
    text = shipped.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    bad = tmp_path / "p.yml"
    bad.write_text(text + first + "\n", encoding="utf-8")
    with pytest.raises(DuplicateKeyError, match=f"duplicate key '{first.split(':')[0]}'"):
        load_response(bad)


def test_trust_files_refuse_it(tmp_path: Path) -> None:
    from policy.canonical import load_front_config
    from policy.identity import load_trust_config

    trust = tmp_path / "trust.yaml"
    trust.write_text("issuers: []\nspiffe: []\nissuers: []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate key 'issuers'"):
        load_trust_config(trust)
    trust.write_text("proxies: []\nproxies:\n  - name: nginx\n    addresses: [127.0.0.1/32]\n", encoding="utf-8")
    with pytest.raises(DuplicateKeyError, match="duplicate key 'proxies'"):
        load_front_config(trust)


def test_sample_events_and_guides_refuse_it(tmp_path: Path) -> None:
    from detections.guides import _guides_in
    from detections.sigma.samples import load_events

    events = tmp_path / "events.yml"
    events.write_text("- user.name: a\n  user.name: b\n", encoding="utf-8")
    with pytest.raises(DuplicateKeyError):
        load_events(events)
    rules = tmp_path / "g.yml"
    rules.write_text(_rule(6, "one", extra="ztsoc: {guide: first}\n") + "---\n"
                     + _rule(7, "two", extra="ztsoc: {guide: a, guide: b}\n"), encoding="utf-8")
    assert {g.investigation for g in _guides_in(rules).values()} == {"first"}


# --- the plain walk (``_plain_document``) against PyYAML's own constructor ------------------------

class _ConstructorOnly:
    """A strict loader without the plain walk: every document through PyYAML's constructor."""

    def construct_document(self, node: Any) -> Any:
        try:
            return super(_NoDuplicates, self).construct_document(node)  # type: ignore[misc]
        finally:
            self._own: dict[Any, Any] = {}


class _CConstructorOnly(_ConstructorOnly, STRICT_LOADER):  # type: ignore[valid-type,misc]
    pass


class _PyConstructorOnly(_ConstructorOnly, StrictPyLoader):
    pass


def _constructor_documents(text: str, pure: bool = False) -> list[Any]:
    return each_document((_PyConstructorOnly if pure else _CConstructorOnly)(text))


def _outcome(read: Any, text: str) -> Any:
    """What a reader makes of the text: its values with which containers are one object, or its error."""
    try:
        docs = read(text)
    except Exception as exc:  # both readers must fail alike
        return ("error", type(exc).__name__, str(exc))
    ids: dict[int, int] = {}

    def shape(value: Any, depth: int = 0) -> Any:
        if isinstance(value, DuplicateKeyError):
            return ("duplicate", str(value))
        if isinstance(value, dict | list | set):
            if id(value) in ids:  # seen before (an alias, or a container inside itself): named only
                return ("same as", ids[id(value)])
            first = ids[id(value)] = len(ids)
            if isinstance(value, dict):
                return ("map", first, [(type(k).__name__, repr(k), shape(v, depth + 1)) for k, v in value.items()])
            if isinstance(value, set):
                return ("set", first, sorted(map(repr, value)))
            return ("seq", first, [shape(v, depth + 1) for v in value])
        return (type(value).__name__, repr(value))

    return [shape(d) for d in docs]


#: scalars the walk builds itself, then the ones it leaves to the constructor
_PLAIN_ATOMS = ["a", "b", "1", "0x1", "017", "1.5", ".nan", ".inf", "yes", "No", "~", "null", "''", "'1'",
                '"x\\ty"', "2024-01-01", "2024-01-01 10:00:00Z", "x y", "1_000", "true"]
_OTHER_ATOMS = ["=", "<<", "!!str 1", "!!int '7'", "!!binary aGk=", "!!float 1", "!custom x",
                "!!timestamp 2001-12-14", "!!null ''", "!!bool yes"]


@st.composite
def _flow(draw: st.DrawFn, plain: bool, depth: int = 0) -> str:
    """A flow-style YAML node: scalars, mappings and sequences with anchors and aliases; unless
    ``plain``, also every kind of tag and the merge and value keys."""
    kind = draw(st.sampled_from(["atom", "atom", "alias", "map", "seq"] if depth < 4 else ["atom", "alias"]))
    if kind == "atom":
        text = draw(st.sampled_from(_PLAIN_ATOMS if plain else _PLAIN_ATOMS + _OTHER_ATOMS))
    elif kind == "alias":
        text = "*" + draw(st.sampled_from(["a", "b"]))
    elif kind == "map":
        pairs = draw(st.lists(st.tuples(_flow(plain, depth + 1), _flow(plain, depth + 1)), max_size=4))
        tag = "" if plain else draw(st.sampled_from(["", "", "", "!!map ", "!!set ", "!!omap ", "!!str "]))
        text = tag + "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    else:
        items = draw(st.lists(_flow(plain, depth + 1), max_size=4))
        tag = "" if plain else draw(st.sampled_from(["", "", "", "!!seq ", "!!omap ", "!!pairs ", "!!set "]))
        text = tag + "[" + ", ".join(items) + "]"
    if kind != "alias" and draw(st.integers(0, 3)) == 0:
        text = f"&{draw(st.sampled_from(['a', 'b']))} {text}"
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=st.lists(st.booleans().flatmap(_flow), min_size=1, max_size=3),
       data=st.lists(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                                  lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                                  max_leaves=8), max_size=2))
def test_the_plain_walk_builds_what_the_constructor_builds(docs: list[str], data: list[Any]) -> None:
    """Generated documents, flow style with every kind of tag, anchor and alias (most refused by
    the walk, which the constructor then decides), and block style as ``yaml.dump`` writes data:
    the same values, the same shared objects, the same duplicates and errors, both parsers."""
    texts = ["---\n" + "\n---\n".join(docs) + "\n", yaml.safe_dump_all(data) if data else "a: 1\n"]
    for text in texts:
        assert _outcome(documents, text) == _outcome(_constructor_documents, text), text
        assert (_outcome(lambda t: documents(t, pure=True), text)
                == _outcome(lambda t: _constructor_documents(t, pure=True), text)), text


def test_the_plain_walk_keeps_aliased_containers_shared() -> None:
    doc, = documents("base: &b {x: [1, 2]}\nboth: [*b, *b]\nlist: &l [a]\nagain: *l\n")
    assert doc["both"][0] is doc["base"] and doc["both"][1] is doc["base"] and doc["again"] is doc["list"]
    deep = "[" * 150 + "]" * 150  # past the walk's depth: the constructor builds it
    assert documents(deep) == _constructor_documents(deep)
