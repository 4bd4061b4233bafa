"""Rules compiled once: a cache of compiled rule sets, keyed by what they were compiled from.

Loading and compiling SigmaHQ's Windows folder (~2,400 rules) means parsing YAML, building
pySigma rules, applying the processing pipeline and parsing every condition: seconds of CPU,
paid by every ``soc detect run``, ``soc rules validate|list|coverage|test`` and ``soc scan``.
The result of that work is plain data (each base rule's processed condition trees, its index
fields and anchors, the rule heads, the alert metadata, the problems), so it is written once as
JSON (:mod:`detections.sigma.ir`) and read back in a fraction of the time; the closures are
built from it as from a freshly processed rule.

The key is a SHA-256 over every rule file (path and content digest: ``file_digests``), the pipeline's name, the
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

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
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
    load_rule_files,
    rule_dirs,
    rule_files,
)
from detections.sigma.matcher import CompiledRule, Matcher, compile_trees
from detections.sigma.split_compile import compile_split
from eventstore.gc_pause import gc_paused

#: 2: correlations as their specs; 3: a document with a duplicate key refused; 4: every base rule has
#: its trees in the matcher's plain form; 5: a rule without a ``ztsoc:`` block has ``"meta": null``
FORMAT = 5
_PACKAGES = ("pysigma", "pysigma-pipeline-windows", "pysigma-pipeline-sysmon", "pysigma-backend-elasticsearch")
_MODULES = ("loader.py", "pipelines.py", "matcher.py", "ir.py", "engine.py", "cache.py", "correlation.py",
            "split_compile.py")


def cache_dir() -> Path:
    """``SOC_CACHE_DIR``, else the user's cache folder (``~/.cache/ztsoc`` on Linux)."""
    env = os.environ.get("SOC_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ztsoc"))


def _normalised(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def installed_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """The installed version of each distribution, from its ``name-version.dist-info`` folder on
    ``sys.path`` (the first found wins, as for imports; the layout pip and wheels write).

    ``importlib.metadata.version`` reads the same folders but imports itself and an email parser
    to read ``METADATA`` (~0.015 CPU s of every warm run); it is still asked for a name not found
    this way (a distribution installed another way), and answers "none" if it is not installed.
    """
    wanted = {_normalised(n): n for n in names}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            listing = os.listdir(entry or ".")
        except OSError:
            continue
        for item in listing:
            if item.endswith(".dist-info"):
                name, _dash, version = item[: -len(".dist-info")].partition("-")
                wanted_name = wanted.get(_normalised(name))
                if wanted_name is not None and version and wanted_name not in found:
                    found[wanted_name] = version
        if len(found) == len(wanted):
            break
    for name in names:
        if name not in found:
            import importlib.metadata

            try:
                found[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                found[name] = "none"
    return found


def _code_fingerprint() -> bytes:
    h = hashlib.sha256()
    versions = installed_versions()
    for name in _PACKAGES:
        h.update(f"{name}={versions[name]};".encode())
    here = Path(__file__).resolve().parent
    for module in _MODULES:
        h.update(hashlib.sha256((here / module).read_bytes()).digest())
    return h.digest()


#: the content digests of rule files by their ``stat``: the memo's file in the cache folder
STAT_MEMO = "file-digests.json"
#: a file changed this recently (ns) is hashed again next time too: a write within the clock's
#: granularity could leave its times as the memo has them (git's "racy" case)
_RACY_NS = 2_000_000_000
#: entries kept at most (files of other rule sets stay remembered up to this many: ~4 MB; SigmaHQ
#: has ~4,000 rule files)
_MEMO_MAX = 20_000


def file_digests(files: list[tuple[Path, bool]]) -> list[tuple[str, bytes]]:
    """Each file's absolute path and the SHA-256 of its content (``b"unreadable"`` if it cannot be read).

    Reading and hashing SigmaHQ's 2,400 Windows rules was a quarter of reading the compiled set
    from the cache. As git's index does, a digest is remembered with the file's device, inode,
    size and modification and change times (nanoseconds), and reused while all five are the
    same: any write changes the change time, which no one can set back. A file changed in the
    last two seconds is not remembered. The memo is only a shortcut to the same digests: a
    damaged or foreign memo file is ignored and rewritten.
    """
    memo_path = cache_dir() / "sigma" / STAT_MEMO
    try:
        memo = orjson.loads(memo_path.read_bytes())
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    now = time.time_ns()
    out: list[tuple[str, bytes]] = []
    learnt: dict[str, list[Any]] = {}
    for path, _shipped in files:
        name = os.path.abspath(path)
        try:
            st = os.stat(name)
        except OSError:
            out.append((name, b"unreadable"))
            continue
        sig = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        known = memo.get(name)
        if known.__class__ is list and len(known) == 6 and known[:5] == sig and known[5].__class__ is str:
            try:
                out.append((name, bytes.fromhex(known[5])))
                continue
            except ValueError:
                pass
        try:
            with open(name, "rb", buffering=0) as fh:
                digest = hashlib.sha256(fh.read()).digest()
        except OSError:
            out.append((name, b"unreadable"))
            continue
        out.append((name, digest))
        if now - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
            learnt[name] = [*sig, digest.hex()]
    if learnt:
        if len(memo) + len(learnt) > _MEMO_MAX:
            memo = {}
        memo.update(learnt)
        with contextlib.suppress(OSError):  # a read-only cache folder: hashed again next time
            _write_atomically(memo_path, orjson.dumps(memo))
    return out


def _write_atomically(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp:
        tmp.write(blob)
    os.replace(tmp.name, path)


def fingerprint(files: list[tuple[Path, bool]], pipeline: str) -> str:
    """The cache key of a rule set: its files (path, shipped, content digest), the pipeline, the code."""
    h = hashlib.sha256(_code_fingerprint())
    h.update(f"format={FORMAT};pipeline={pipeline};".encode())
    for (_path, shipped), (name, digest) in zip(files, file_digests(files), strict=True):
        h.update(f"{name}\0{int(shipped)}\0".encode())
        h.update(digest)
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


def _compile_part(files: Sequence[tuple[Path, bool]], key: str, pipeline: str) -> bytes:
    """Some of a set's files compiled by the serial code, as this cache's JSON (a worker's part)."""
    rs = load_rule_files(files)
    return serialise(rs, compile_ruleset(rs, pipeline, consume=True), key)


def load_compiled_cached(dirs: list[Path | str] | tuple[Path | str, ...] = (), *, shipped: bool = True,
                         pipeline: str = "ztsoc", use_cache: bool = True,
                         jobs: int = 1) -> tuple[RuleSet, CompiledSet, CacheInfo]:
    """The rule set and its compiled form, from the cache when it holds this exact set.

    ``jobs``: processes a cold compile of a large set may use (forked from this one, so only a
    caller without other threads asks for more than one; see :mod:`detections.sigma.split_compile`).
    """
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
        blob = compile_split(files, key, pipeline, jobs, _compile_part) if jobs > 1 else None
        if blob is not None:  # the same document the serial compile writes, read back as from the cache
            rs, cs = deserialise(blob, key, pipeline, {str(p): p for p, _ in files})
        else:
            rs = load_rule_files(files)
            cs = compile_ruleset(rs, pipeline, consume=True)
        if use_cache:
            try:
                _write_atomically(path, blob if blob is not None else serialise(rs, cs, key))
                info.written = True
            except OSError:
                pass  # a read-only or full cache folder costs speed, not correctness
    return rs, cs, info
