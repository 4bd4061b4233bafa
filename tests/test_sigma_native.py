"""The compiled Sigma matcher (detections/sigma/native.py): built, guarded, and equal to its source.

Two implementations of the same code must agree: the matcher compiled by mypyc (what
``soc scan`` and ``soc detect run`` run) and its source run by the interpreter, loaded from
``matcher.py`` under another name in this process. Both build their predicates from the same
plain condition trees (rules covering every value type and modifier, the shipped rules, and
SigmaHQ's Windows rules when ../shared/data is there) and meet the same generated events,
whose values are of every type an event may hold (text, numbers huge and odd, bools, null,
lists, nested objects). mypyc checks annotations at run time and has its own versions of some
``str`` methods, so a difference here is a real defect of one or the other; a ``TypeError``
from the compiled matcher is one whatever the interpreter does.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detections.sigma import matcher, native
from detections.sigma.matcher import INDEX_FIELDS, compile_rule, detection_fields
from detections.sigma.pipelines import get_pipeline
from eventstore.native import PURE_ENV, RECORD
from tests.compiled_build import assert_compiled_where_a_compiler_is
from tests.test_sigma_matcher import SEMANTICS, _rule
from tests.test_sigma_matcher_equivalence import RULES as WINDOWS_RULES

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
COMPILED = native.MODULES.reason is None
needs_build = pytest.mark.skipif(not COMPILED, reason=f"matcher not compiled here: {native.MODULES.status()}")

#: one rule per value type and modifier beyond the semantics table (``t`` of the plain form:
#: s cs tp b n null exists re cidr cmp ref exp, and keywords)
EXTRA = [
    "  sel:\n    a|re|i: '^x'\n    b|re|m|s: 'y.z'\n  condition: sel",
    "  sel:\n    a|lt: 5\n    b|lte: 1.5\n  condition: sel",
    "  sel:\n    a|gt: -3\n  condition: sel",
    "  sel:\n    c|gte: 4625\n  condition: sel",
    "  sel:\n    a|neq: 5\n  condition: sel",
    "  sel:\n    a|exists: false\n  condition: sel",
    "  sel:\n    a: true\n  condition: sel",
    "  sel:\n    b: 4.5\n  condition: sel",
    "  sel:\n    c: 4625\n  condition: sel",
    "  sel:\n    a|fieldref|startswith: b\n  condition: sel",
    "  sel:\n    c|fieldref|endswith: d\n  condition: sel",
    "  sel:\n    '@timestamp|minute': 5\n  condition: sel",
    "  sel:\n    '@timestamp|day': 1\n    '@timestamp|month': 3\n  condition: sel",
    "  sel:\n    '@timestamp|week': 9\n  condition: sel",
    "  sel:\n    '@timestamp|year': 2026\n  condition: sel",
    "  keywords: [4625]\n  condition: keywords",
    "  keywords:\n    '|re': 'fo+'\n  condition: keywords",
    "  keywords: ['ΣΊΣΥΦΟΣ', 'İstanbul', 'x*y', 'straße', 'mimi']\n  condition: keywords",
    "  sel:\n    a|cidr: ['::1/128', 'fe80::/10', '10.0.0.0/8']\n  condition: sel",
    "  sel:\n    a|windash|contains: '-exec'\n  condition: sel",
    "  sel:\n    b|base64offset|contains: 'cmd'\n  condition: sel",
    "  sel:\n    a|cased|contains: 'Ab*c?'\n  condition: sel",
    "  sel:\n    a|contains: ['ΣΊΣΥΦΟΣ', 'İstanbul', 'straße', 'mimi', 'x', 'y']\n  condition: sel",
    "  sel:\n    a|startswith: ['ΣΑ', 'ǅ']\n    b|endswith: ['ΟΣ', 'ß']\n  condition: sel",
    "  sel:\n    d: ['ΣΊΣΥΦΟΣ', 'a?c', '*İ*', 'x*y*z']\n  condition: sel",
    "  sel:\n    a: null\n  filter:\n    b: ''\n  condition: sel and not filter",
    "  a:\n    a: x\n  b:\n    b: y\n  c:\n    c: 1\n  d:\n    d: z\n  condition: 1 of them or (a and b and c and not d)",
]

#: the plain trees' value tags the rules above must cover between them
TAGS = {"s", "cs", "tp", "b", "n", "null", "exists", "re", "cidr", "cmp", "ref", "exp", "keyword"}


def interpreted_module() -> ModuleType:
    """``matcher.py`` run by the interpreter, whatever is built (as ``ZTSOC_PURE_PYTHON=1`` would load it)."""
    name = "_ztsoc_matcher_interpreted"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "detections" / "sigma" / "matcher.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


PY = interpreted_module()


def _tags(node: dict[str, Any], out: set[str]) -> None:
    def value(v: dict[str, Any]) -> None:
        out.add(v["t"])
        for sub in v.get("v") if v["t"] == "exp" else ():
            value(sub)

    if "f" in node:
        value(node["v"])
    elif "k" in node:
        out.add("keyword")
        value(node["k"])
    elif "not" in node:
        _tags(node["not"], out)
    else:
        for arg in node.get("and") or node.get("or") or ():
            _tags(arg, out)


def _own_rules() -> list[tuple[str, list[Any]]]:
    """(key, plain trees) of the semantics cases, the extra rules and the Windows rules of the equivalence test."""
    out = []
    for n, (detection, _doc, _expected) in enumerate(SEMANTICS):
        with contextlib.suppress(Exception):  # a case that is meant to be refused
            out.append((f"semantics-{n}", compile_rule(_rule(detection), get_pipeline()).ir))
    for n, detection in enumerate(EXTRA):
        out.append((f"extra-{n}", compile_rule(_rule(detection), get_pipeline()).ir))
    for n, (logsource, detection) in enumerate(WINDOWS_RULES):
        out.append((f"windows-{n}", compile_rule(_rule(detection, logsource), get_pipeline()).ir))
    return out


def _shipped_rules() -> list[tuple[str, list[Any]]]:
    from detections.sigma.engine import compile_ruleset
    from detections.sigma.loader import load_rules

    return [(cr.key, cr.ir) for cr in compile_ruleset(load_rules(), "ztsoc").base]


class Pair:
    """The same rules compiled by both matchers (from the same plain trees, each its own copy)."""

    def __init__(self, rules: list[tuple[str, list[Any]]]) -> None:
        self.keys = [key for key, _ in rules]
        self.native = [matcher.compile_trees(key, orjson.loads(orjson.dumps(ir))) for key, ir in rules]
        self.py = [PY.compile_trees(key, orjson.loads(orjson.dumps(ir))) for key, ir in rules]
        self.native_matcher = matcher.Matcher(self.native)
        self.py_matcher = PY.Matcher(self.py)
        self.fields = sorted({f for cr in self.native for f in detection_fields(cr)} | set(INDEX_FIELDS))
        heads = {tuple(sorted((f, min(vals)) for f, vals in cr.required.items() if f in INDEX_FIELDS))
                 for cr in self.native}
        self.heads = [dict(h) for h in sorted(heads)]
        literals: set[str] = set()
        for _key, ir in rules:
            _literals(ir, literals)
        self.literals = sorted(literals)

    def outcomes(self, doc: Any) -> tuple[Any, Any]:
        """What each matcher makes of the event: the rules it matches (by index, flat when it is,
        isolated, each rule alone on a fresh view), or the exception it raised."""
        return _outcome(matcher, self.native_matcher, self.native, doc), _outcome(PY, self.py_matcher, self.py, doc)


def _literals(node: Any, out: set[str]) -> None:
    if isinstance(node, str):
        if 0 < len(node) < 40:
            out.add(node)
    elif isinstance(node, list):
        for item in node:
            _literals(item, out)
    elif isinstance(node, dict):
        for item in node.values():
            _literals(item, out)


def _outcome(module: ModuleType, m: Any, rules: list[Any], doc: Any) -> Any:
    def run(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            return ("raised", type(exc).__name__, str(exc))

    flat = not any(isinstance(v, dict) for v in doc.values())
    out = [run(lambda: [r.key for r in m.match(doc)]),
           run(lambda: [r.key for r in m.match(doc, flat)]),
           run(lambda: [r.key for r in m.candidates(module.EventView(doc))]),
           run(lambda: [r.key for r in m.match_isolated(doc, {})]),
           run(lambda: [r.key for r in rules if r.predicate(module.EventView(doc))]),
           run(lambda: module.EventView(doc).all_lower())]
    return out


# -- hostile values -------------------------------------------------------------------------
ODD_NUMBERS = [0, 1, -1, 22, 1024, 4625, 2**31, 2**63 - 1, 2**63, 2**64, 2**70, -(2**70), 10**30, 10**400,
               0.0, -0.0, 0.5, 4.5, 4625.0, 1e15, 1e300, -1e308, math.inf, -math.inf, math.nan, 5e-324]
ODD_TEXT = ["", " ", "\x00", "\ud800", "0x10", "0X1F", "0x" + "f" * 400, "1e999", "-1e999", "nan", "inf", " 22",
            "4625", "4625.0", "true", "FALSE", "null", "10.0.0.1", "::1", "fe80::1%eth0", "10.0.0.0/8",
            "2026-03-01T02:30:00Z", "2026-03-01T02:30:00.000+07:00", "2026-02-30T00:00:00Z", "99999-01-01",
            "ΣΊΣΥΦΟΣ", "σίσυφος", "Σ", "ΑΣ.", "İstanbul", "i̇stanbul", "STRASSE", "straße", "ǅ", "ﬃ", "\u0130",
            "C:\\Windows\\System32\\cmd.exe", "\\cmd.exe", "-exec", "/exec", "\u2013exec", "x" * 2000]


def _text(pair: Pair) -> st.SearchStrategy[str]:
    words = st.sampled_from(pair.literals + ODD_TEXT)
    return st.one_of(words, st.builds(lambda a, b: a + b, words, words), st.builds(str.upper, words),
                     st.text(max_size=12))


def _values(pair: Pair) -> st.SearchStrategy[Any]:
    scalars = st.one_of(_text(pair), st.sampled_from(ODD_NUMBERS), st.integers(), st.floats(), st.booleans(),
                        st.none())
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "b", "event_data", "x.y"]), inner,
                                                     max_size=3),
        st.tuples(inner, inner)), max_leaves=6)


@st.composite
def _events(draw: Any, pair: Pair) -> dict[Any, Any]:
    doc: dict[Any, Any] = dict(draw(st.sampled_from(pair.heads))) if draw(st.booleans()) else {}
    for name in draw(st.lists(st.sampled_from(pair.fields), max_size=8, unique=True)):
        doc[name] = draw(_values(pair))
    if draw(st.integers(0, 5)) == 0:  # Defender's spaced names, UserData, an object, a key that is not text
        doc[draw(st.sampled_from(["winlog.event_data.Threat Name", "winlog.user_data.W.Operation", "winlog", 7,
                                  "winlog.event_data"]))] = draw(_values(pair))
    return doc


_PAIRS: dict[str, Pair] = {}


def _pair(name: str) -> Pair:
    if name not in _PAIRS:
        _PAIRS[name] = Pair(_own_rules() if name == "own" else _shipped_rules())
    return _PAIRS[name]


def _assert_same(pair: Pair, doc: Any) -> None:
    compiled, interpreted = pair.outcomes(doc)
    for got in compiled:
        assert not (isinstance(got, tuple) and got[:2] == ("raised", "TypeError")), f"compiled: {got} on {doc!r}"
    assert compiled == interpreted, f"the compiled and interpreted matchers differ on {doc!r}"


def test_the_rules_cover_every_value_type() -> None:
    seen: set[str] = set()
    for _key, ir in _own_rules():
        for tree in ir:
            _tags(tree, seen)
    assert seen >= TAGS, sorted(TAGS - seen)


def test_the_interpreted_copy_is_the_source() -> None:
    assert PY.__file__ is not None and PY.__file__.endswith("matcher.py")
    assert PY.EventView is not matcher.EventView


def test_the_matcher_is_compiled_where_a_compiler_is() -> None:
    assert_compiled_where_a_compiler_is(native.MODULES, matcher)


@needs_build
@pytest.mark.parametrize("rules", ["own", "shipped"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_compiled_and_interpreted_agree_on_generated_events(rules: str, data: st.DataObject) -> None:
    """The rules covering every value type (``own``), and the shipped rules."""
    pair = _pair(rules)
    _assert_same(pair, data.draw(_events(pair)))


def _random_value(rng: random.Random, pair: Pair, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.35:
        text = rng.choice(pair.literals + ODD_TEXT)
        return text.upper() if rng.random() < 0.2 else text
    if roll < 0.55:
        return rng.choice(ODD_NUMBERS)
    if roll < 0.65:
        return rng.choice([True, False, None, "", [], {}])
    if roll < 0.75:
        return "".join(rng.choice("aΣς\\x.:0-*? İß\x00") for _ in range(rng.randrange(8)))
    if depth > 2:
        return None
    if roll < 0.88:
        return [_random_value(rng, pair, depth + 1) for _ in range(rng.randrange(4))]
    if roll < 0.95:
        return {rng.choice(["a", "b", "event_data", "x.y"]): _random_value(rng, pair, depth + 1)
                for _ in range(rng.randrange(3))}
    return tuple(_random_value(rng, pair, depth + 1) for _ in range(2))


@needs_build
@pytest.mark.parametrize("rules", ["own", "shipped"])
def test_compiled_and_interpreted_agree_on_thousands_of_hostile_events(rules: str) -> None:
    """As the ``sigma_match`` fuzz harness feeds them (interpreted there), to both: each event as
    made, and its values spread over every field the rules read under each index head, so every
    rule's predicate meets every kind of value."""
    pair = _pair(rules)
    rng = random.Random(17)
    matched = 0
    for _ in range(1500 if rules == "own" else 600):
        doc: dict[Any, Any] = {name: _random_value(rng, pair) for name in rng.sample(pair.fields, min(6, len(pair.fields)))}
        values = list(doc.values())
        spread = {name: values[i % len(values)] for i, name in enumerate(pair.fields)}
        for event in (doc, {**spread, **rng.choice(pair.heads)}):
            _assert_same(pair, event)
            matched += bool(pair.native_matcher.match(event))
    assert matched > (300 if rules == "own" else 40)  # the events reach the predicates, not only the index


@needs_build
@pytest.mark.slow
def test_compiled_and_interpreted_agree_on_sigmahq_windows_over_the_evtx_samples() -> None:
    """SigmaHQ's Windows rules over the EVTX attack samples (when ../shared/data is there): the same matches."""
    rules_dir, samples = SHARED / "sigma" / "rules" / "windows", SHARED / "evtx-attack-samples"
    if not rules_dir.is_dir() or not samples.is_dir():
        pytest.skip("../shared/data not present")
    from collectors.base import read_all
    from collectors.evtx import EvtxReader
    from detections.sigma.cache import load_compiled_cached

    _rs, cs, _info = load_compiled_cached([rules_dir], shipped=False)
    pair = Pair([(cr.key, cr.ir) for cr in cs.base])
    events = [e for path in sorted(samples.rglob("*.evtx"))[:60] for e in read_all(EvtxReader(), path).events]
    assert len(events) > 500
    native_hits = [[r.key for r in pair.native_matcher.match(e, True)] for e in events]
    py_hits = [[r.key for r in pair.py_matcher.match(e, True)] for e in events]
    assert native_hits == py_hits
    assert sum(map(len, native_hits)) > 50


# -- the guard ------------------------------------------------------------------------------
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_a_build_is_used_only_while_it_matches_its_source(tmp_path: Path) -> None:
    shutil.copy(ROOT / "detections" / "sigma" / "matcher.py", tmp_path / "matcher.py")
    (tmp_path / f"matcher{SUFFIX}").write_bytes(b"")
    modules = native.MODULES
    modules.write_record(tmp_path)
    assert modules.decide(tmp_path, {}) is None
    assert modules.decide(tmp_path, {PURE_ENV: "1"}) == f"{PURE_ENV}=1"
    source = tmp_path / "matcher.py"
    source.write_text(source.read_text() + "\n# edited\n")
    assert modules.decide(tmp_path, {}) == "sources changed since the build (make dev-deps rebuilds)"
    modules.write_record(tmp_path)
    assert modules.decide(tmp_path, {}) is None
    modules.forget_record(tmp_path)  # what setup.py does when a compile fails
    assert modules.decide(tmp_path, {}) == f"no build record ({RECORD})"
    (tmp_path / f"matcher{SUFFIX}").unlink()
    assert (modules.decide(tmp_path, {}) or "").startswith("not compiled")


#: the child's side: which matcher the package gives, and whether it carries the edit
CHILD = r"""
import json
from detections.sigma import matcher, native
print(json.dumps([matcher.__file__, native.MODULES.reason, getattr(matcher, "EDITED", False)]))
"""


def _copy_of_the_package(tmp_path: Path) -> Path:
    """detections.sigma with its build (the compiled matcher and its record) in a folder of its own."""
    sigma = tmp_path / "detections" / "sigma"
    sigma.mkdir(parents=True)
    (tmp_path / "detections" / "__init__.py").write_text("")
    for name in ("__init__.py", "native.py", "matcher.py", RECORD):
        shutil.copy(ROOT / "detections" / "sigma" / name, sigma / name)
    for so in (ROOT / "detections" / "sigma").glob(f"matcher*{SUFFIX}"):
        shutil.copy(so, sigma / so.name)
    shutil.copytree(ROOT / "eventstore", tmp_path / "eventstore", ignore=shutil.ignore_patterns("__pycache__"))
    return sigma


def _child(root: Path, **env: str) -> tuple[str, str | None, bool]:
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=root, timeout=60,
                          env={**{k: v for k, v in os.environ.items() if k != PURE_ENV}, "PYTHONPATH": str(root),
                               **env})
    assert proc.returncode == 0, proc.stderr
    file, reason, edited = json.loads(proc.stdout)
    return file, reason, edited


@needs_build
def test_an_edited_source_runs_interpreted(tmp_path: Path) -> None:
    """The build as made runs compiled; once its source is edited, the source runs (with the edit)."""
    sigma = _copy_of_the_package(tmp_path)
    file, reason, edited = _child(tmp_path)
    assert reason is None and file.endswith(SUFFIX) and not edited
    source = sigma / "matcher.py"
    source.write_text(source.read_text() + "\nEDITED = True\n")
    file, reason, edited = _child(tmp_path)
    assert reason == "sources changed since the build (make dev-deps rebuilds)"
    assert file == str(source) and edited
    source.write_text(source.read_text().replace("\nEDITED = True\n", ""))
    file, reason, _ = _child(tmp_path, **{PURE_ENV: "1"})
    assert reason == f"{PURE_ENV}=1" and file == str(source)
