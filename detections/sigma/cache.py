"""Rules compiled once: a cache of compiled rule sets, keyed by what they were compiled from.

Loading and compiling SigmaHQ's Windows folder (~2,400 rules) means parsing YAML, building
pySigma rules, applying the processing pipeline and parsing every condition: seconds of CPU,
paid by every ``soc detect run``, ``soc rules validate|list|coverage|test`` and ``soc scan``.
The result of that work is plain data (each base rule's processed condition trees, its index
fields and anchors, the rule heads, the alert metadata, the problems), so it is written once as
JSON (:mod:`detections.sigma.ir`) and read back in a fraction of the time; the closures are
built from it as from a freshly processed rule.

The key is a SHA-256 over every rule file (path and content), the pipeline's name, the
versions of pySigma and its plugins, and the source of the modules that shape the compiled
form (loader, pipelines, matcher, this format). Any change to any of them is another key, so a
stale or foreign cache is never used; it is simply rebuilt. A cache file is only data: it is
parsed with ``json``, checked for its format and key, and anything unexpected in it means
"rebuild", never an error and never code execution (no pickle).

Correlation rules are cached as their specs (:class:`~detections.sigma.correlation.CorrelationSpec`,
plain data of our own, references already resolved across files), so a set from the cache imports
none of pySigma's rule model, YAML or pipelines for them (~0.14 s of every warm run with the
shipped rules while they were compiled from their files).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from detections.alerts import RuleInfo
from detections.sigma.engine import CompiledSet, compile_ruleset
from detections.sigma.loader import (
    LoadedRule,
    RuleHead,
    RuleMeta,
    RuleProblem,
    RuleSet,
    load_rules,
    rule_dirs,
    rule_files,
)
from detections.sigma.matcher import CompiledRule, Matcher, compile_trees
from eventstore.gc_pause import gc_paused

#: 2: correlations as their specs; 3: a document with a duplicate key refused; 4: every base rule has
#: its trees in the matcher's plain form; 5: a rule without a ``ztsoc:`` block has ``"meta": null``
FORMAT = 5
_PACKAGES = ("pysigma", "pysigma-pipeline-windows", "pysigma-pipeline-sysmon", "pysigma-backend-elasticsearch")
_MODULES = ("loader.py", "pipelines.py", "matcher.py", "ir.py", "engine.py", "cache.py", "correlation.py")


def cache_dir() -> Path:
    """``SOC_CACHE_DIR``, else the user's cache folder (``~/.cache/ztsoc`` on Linux)."""
    env = os.environ.get("SOC_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ztsoc"))


def _code_fingerprint() -> bytes:
    h = hashlib.sha256()
    for name in _PACKAGES:
        try:
            h.update(f"{name}={importlib.metadata.version(name)};".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{name}=none;".encode())
    here = Path(__file__).resolve().parent
    for module in _MODULES:
        h.update(hashlib.sha256((here / module).read_bytes()).digest())
    return h.digest()


def fingerprint(files: list[tuple[Path, bool]], pipeline: str) -> str:
    """The cache key of a rule set: its files (path, shipped, content), the pipeline, the code."""
    h = hashlib.sha256(_code_fingerprint())
    h.update(f"format={FORMAT};pipeline={pipeline};".encode())
    for path, shipped in files:
        try:
            content = path.read_bytes()
        except OSError:
            content = b"\0unreadable"
        h.update(f"{os.path.abspath(path)}\0{int(shipped)}\0{len(content)}\0".encode())
        h.update(content)
    return h.hexdigest()


@dataclass
class CacheInfo:
    """How the set was obtained (for ``--verbose`` and the bench)."""

    key: str
    path: Path
    hit: bool
    written: bool = False


#: the ``ztsoc:`` block of a rule that has none (nearly every SigmaHQ rule): one object for them all
#: (frozen; nothing changes a rule's samples)
_NO_META = RuleMeta()


def _meta_in(d: dict[str, Any] | None) -> RuleMeta:
    if d is None:
        return _NO_META
    return RuleMeta(guide=d["guide"], response=d["response"], suppress=d["suppress"], entity=tuple(d["entity"]),
                    samples=d["samples"], expect=d["expect"], baseline_fields=tuple(d["baseline_fields"]),
                    baseline_learn=d["baseline_learn"])


def _info_in(d: dict[str, Any]) -> RuleInfo:
    for name in ("tags", "references", "entity_fields"):
        d[name] = tuple(d[name])
    return RuleInfo(**d)


_INFO_FIELDS = frozenset(f.name for f in fields(RuleInfo))


class _Infos(Mapping[str, RuleInfo]):
    """The rules' alert metadata, each made on first use: a scan asks for its matched rules' only
    (making all of SigmaHQ's ~2,400 was a tenth of reading the cache). Their shape is checked
    when the cache is read (an object of RuleInfo's fields per rule); their values, when one is
    asked for."""

    __slots__ = ("_made", "_raw")

    def __init__(self, raw: dict[str, Any]) -> None:
        names = _INFO_FIELDS
        if raw.__class__ is not dict or not all(v.__class__ is dict and v.keys() == names for v in raw.values()):
            raise ValueError("another format or key")
        self._raw = raw
        self._made: dict[str, RuleInfo] = {}

    def __getitem__(self, key: str) -> RuleInfo:
        info = self._made.get(key)
        if info is None:
            info = self._made[key] = _info_in(dict(self._raw[key]))
        return info

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def _problem_in(d: dict[str, Any]) -> RuleProblem:
    return RuleProblem(d["path"], d["rule"], d["stage"], d["reason"])


def serialise(rs: RuleSet, cs: CompiledSet, key: str) -> bytes:
    """The compiled set as JSON bytes."""
    index = {id(r): n for n, r in enumerate(rs.rules)}
    # each rule's trees as one JSON text: parsed only for the rules a run meets (see ``_lazy_rule``)
    base = [{"key": cr.key, "rule": index[id(cr.payload)], "trees": orjson.dumps(cr.ir).decode(),
             "required": {k: sorted(v) for k, v in cr.required.items()}, "anchors": cr.anchors} for cr in cs.base]
    doc = {
        "format": FORMAT, "key": key,
        # dataclasses as they are: orjson writes their fields itself (``asdict`` copying them first
        # was half of this function)
        "rules": [{"path": str(r.path), "shipped": r.shipped, "head": r.head,
                   "meta": None if r.meta == _NO_META else r.meta} for r in rs.rules],
        "load_problems": [p.as_dict() for p in rs.problems],
        "problems": [p.as_dict() for p in cs.problems],
        "base": base,
        "correlations": [{"rule": index[id(cs.rules[s.key])], "spec": s.as_json()} for s in cs.specs],
        "generating": sorted(cs.generating),
        "margin": cs.margin,
        "infos": dict(cs.infos),
    }
    return orjson.dumps(doc)


def deserialise(data: bytes, key: str, pipeline: str,
                paths: Mapping[str, Path] | None = None) -> tuple[RuleSet, CompiledSet]:
    """Back from :func:`serialise`; raises ``ValueError`` / ``KeyError`` / ``TypeError`` on anything odd.

    ``paths``: the rule files' paths by their text, when the caller listed them (the same objects
    are used, instead of making a ``Path`` again for every rule)."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("key") != key:
        raise ValueError("another format or key")
    known = paths or {}
    loaded = [LoadedRule(None, known.get(r["path"]) or Path(r["path"]), _meta_in(r["meta"]), bool(r["shipped"]),
                         head=RuleHead(**{**r["head"], "tags": tuple(r["head"]["tags"])})) for r in doc["rules"]]
    rs = RuleSet(loaded, [_problem_in(p) for p in doc["load_problems"]])
    rules: dict[str, LoadedRule] = {}
    base: list[CompiledRule] = []
    for entry in doc["base"]:
        lr = loaded[entry["rule"]]
        base.append(_lazy_rule(entry, lr, pipeline))
        rules[lr.key] = lr
    specs = []
    if doc["correlations"]:  # plain data of our own (no pySigma); the engine's module only when needed
        from detections.sigma.correlation import CorrelationSpec
    for entry in doc["correlations"]:
        spec = CorrelationSpec.from_json(entry["spec"])
        specs.append(spec)
        rules[spec.key] = loaded[entry["rule"]]
    cs = CompiledSet(rules=rules, base=base, matcher=Matcher(base), specs=specs,
                     generating=frozenset(doc["generating"]), margin=dict(doc["margin"]),
                     infos=_Infos(doc["infos"]),
                     problems=[_problem_in(p) for p in doc["problems"]])
    return rs, cs


def _lazy_rule(entry: dict[str, Any], payload: LoadedRule, pipeline: str) -> CompiledRule:
    """A cached rule filed in the index at once, its predicate built on the first event it meets.

    Most rules of a large set never meet a candidate event in a run; parsing their trees and
    building their closures only then keeps "ready" at reading the cache and filing the index
    (the trees are the matcher's own plain form: no pySigma object is made).
    """
    anchors = entry["anchors"]
    trees = entry["trees"]
    if not isinstance(trees, str):
        raise ValueError("another format or key")  # not what this format writes: rebuilt
    cr = CompiledRule(entry["key"], _never, {k: frozenset(v) for k, v in entry["required"].items()}, None,
                      payload, [tuple(a) for a in anchors] if anchors is not None else None, trees, pipeline)

    def first_use(ev: Any) -> bool:
        cr.predicate = compile_trees(cr.key, cr.ir, index=False).predicate
        return cr.predicate(ev)

    cr.predicate = first_use
    return cr

def _never(ev: Any) -> bool:
    return False


def load_compiled_cached(dirs: list[Path | str] | tuple[Path | str, ...] = (), *, shipped: bool = True,
                         pipeline: str = "ztsoc", use_cache: bool = True) -> tuple[RuleSet, CompiledSet, CacheInfo]:
    """The rule set and its compiled form, from the cache when it holds this exact set."""
    files = rule_files(rule_dirs(dirs, shipped=shipped))
    key = fingerprint(files, pipeline)
    path = cache_dir() / "sigma" / f"{key}.json"
    info = CacheInfo(key=key, path=path, hit=False)
    if use_cache:
        try:
            data = path.read_bytes()
        except OSError:
            data = None
        if data is not None:
            # the cyclic GC off while the cache is read: tens of thousands of long-lived
            # containers made at once set off full collections that find nothing (half of the
            # load's CPU time on SigmaHQ's Windows set); reference counting frees what fails
            try:
                with gc_paused():
                    rs, cs = deserialise(data, key, pipeline, {str(p): p for p, _ in files})
                info.hit = True
                return rs, cs, info
            except Exception:  # a damaged or foreign cache file is rebuilt, never trusted
                pass
    # the cyclic GC off while pySigma builds its many long-lived objects and the cache is
    # written: full collections that found ~nothing were 40 % of a cold load; the garbage
    # pySigma leaves in cycles is collected once, on the way out
    with gc_paused():
        rs = load_rules(dirs, shipped=shipped)
        cs = compile_ruleset(rs, pipeline, consume=True)
        if use_cache:
            try:
                blob = serialise(rs, cs, key)
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp:
                    tmp.write(blob)
                os.replace(tmp.name, path)
                info.written = True
            except OSError:
                pass  # a read-only or full cache folder costs speed, not correctness
    return rs, cs, info
