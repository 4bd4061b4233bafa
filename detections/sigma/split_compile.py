"""A cold compile of a large rule set shared between processes, giving exactly the serial result.

Why: with no usable cache, parsing (YAML, pySigma's rule model) and compiling (the pipeline,
the conditions) SigmaHQ's Windows folder is ~2 CPU seconds in one process, nearly all of a
responder's first ``soc scan`` of a new rule folder. Each rule file is parsed and compiled on
its own except for three things that look across files: correlation references, duplicate rule
ids and names (the first in file order wins), and the order of everything written out.

How: the files are split into groups of about equal size, every file with a ``correlation:``
document and every shipped file in the first group, which this process compiles while forked
workers compile the others, each with the ordinary serial code (:func:`load_rule_files`,
:func:`compile_ruleset`) into the compiled-rule cache's own plain form
(:func:`detections.sigma.cache.serialise`). The parts are then put back in file order into the
one document the serial compile would have written, byte for byte
(``tests/test_sigma_split_compile.py`` compares the two on generated and real rule sets).

When the groups are not independent, the split result is thrown away and the caller compiles
serially: a rule name or id found in two groups (which one wins, or which one a correlation
means, depends on the whole set), a correlation reference left unresolved in its group, a
correlation dropped for a reference to an unusable rule, or a worker that failed. Those are
rare, and each case costs one serial compile more, never a different answer.

Written here by hand: it is the merge of our own cache format, which no library knows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from detections.sigma.engine import DANGLING

#: below this many rule files a single process is done before a worker would pay for itself
#: (forking, and each part's serialising and merging: ~0.1 s for SigmaHQ's Windows set)
MIN_FILES = 400
#: a document that is a correlation rule (Sigma's top-level ``correlation:`` key)
_CORRELATION = re.compile(rb"^correlation\s*:", re.MULTILINE)

Files = Sequence[tuple[Path, bool]]


def groups(files: Files, count: int) -> list[list[tuple[Path, bool]]]:
    """``count`` groups of about equal bytes; correlation and shipped files (and unreadable ones,
    whose problem any group reports alike) in the first, which this process compiles."""
    out: list[list[tuple[Path, bool]]] = [[] for _ in range(count)]
    sizes = [0] * count
    free: list[tuple[int, int, tuple[Path, bool]]] = []
    for n, (path, shipped) in enumerate(files):
        try:
            data = path.read_bytes()
        except OSError:
            out[0].append((path, shipped))
            continue
        if shipped or _CORRELATION.search(data):
            out[0].append((path, shipped))
            sizes[0] += len(data)
        else:
            free.append((len(data), n, (path, shipped)))
    for size, _, item in sorted(free, key=lambda f: -f[0]):  # largest first onto the lightest group
        lightest = sizes.index(min(sizes))
        out[lightest].append(item)
        sizes[lightest] += size
    return out


def compile_split(files: Files, key: str, pipeline: str, workers: int,
                  compile_part: Callable[[Files, str, str], bytes]) -> bytes | None:
    """The cache document of the whole set, compiled by ``workers`` processes (this one included);
    ``None`` when it must be compiled serially (see the module docstring).

    ``compile_part(files, key, pipeline)``: one group compiled by the serial code into the cache's
    JSON (``detections.sigma.cache``'s, given here so that this module needs nothing of it; a
    module-level function, as a worker is handed it by name)."""
    if workers < 2 or len(files) < MIN_FILES or threading.active_count() > 1:
        return None  # forking a process with other threads could copy a lock another thread holds
    parts = [g for g in groups(files, workers) if g]
    if len(parts) < 2:
        return None
    import multiprocessing  # here, not at the top: a warm run never forks (~5 ms of imports)
    from concurrent.futures import ProcessPoolExecutor

    try:
        with ProcessPoolExecutor(len(parts) - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(compile_part, part, key, pipeline) for part in parts[1:]]
            docs = [orjson.loads(compile_part(parts[0], key, pipeline))]
            docs += [orjson.loads(f.result()) for f in futures]
    except Exception:  # a worker that died or failed: the serial compile decides
        return None
    order = {str(path): n for n, (path, _) in enumerate(files)}
    merged = merge(docs, order)
    return None if merged is None else orjson.dumps(merged)


def merge(docs: list[dict[str, Any]], order: dict[str, int]) -> dict[str, Any] | None:
    """The parts' cache documents as the one the serial compile writes; ``None`` when they are not
    independent. ``order``: each rule file's position in the serial order (by its path text)."""
    seen: dict[str, int] = {}
    for n, doc in enumerate(docs):
        for rule in doc["rules"]:
            for name in (rule["head"]["key"], rule["head"]["uuid"]):
                if name is not None and seen.setdefault(name, n) != n:
                    return None  # the same name or id in two groups
        if any(p["stage"] == "resolve" for p in doc["load_problems"]):
            return None
        if any(p["reason"].startswith(DANGLING) for p in doc["problems"]):
            return None
    # the rules in file order (a file is whole in one group, so its own order is kept)
    placed = sorted(((order[r["path"]], n, i) for n, doc in enumerate(docs) for i, r in enumerate(doc["rules"])))
    new_index = {(n, i): j for j, (_, n, i) in enumerate(placed)}
    rules = [docs[n]["rules"][i] for _, n, i in placed]

    def by_file(items: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        return [item for _, item in sorted(items, key=lambda x: x[0])]  # stable: a group's order kept

    load_problems = by_file([(order[p["path"]], p) for doc in docs for p in doc["load_problems"]])
    # a part's problems are its load problems, then those of the compile loop, in rule order
    loop = by_file([(order[p["path"]], p) for doc in docs for p in doc["problems"][len(doc["load_problems"]):]])
    base: list[tuple[int, dict[str, Any]]] = []
    correlations: list[tuple[int, dict[str, Any]]] = []
    place: dict[str, int] = {}
    for n, doc in enumerate(docs):
        for entry in doc["base"]:
            at = new_index[(n, entry["rule"])]
            base.append((at, {**entry, "rule": at}))
            place[entry["key"]] = at
        for entry in doc["correlations"]:  # the first group's, unless one was written unlike the pattern
            at = new_index[(n, entry["rule"])]
            correlations.append((at, {**entry, "rule": at}))
            place[entry["spec"]["key"]] = at
    infos = {k: v for doc in docs for k, v in doc["infos"].items()}
    margin = {k: v for doc in docs for k, v in doc["margin"].items()}
    return {
        "format": docs[0]["format"], "key": docs[0]["key"],
        "rules": rules,
        "load_problems": load_problems,
        "problems": load_problems + loop,
        "base": [entry for _, entry in sorted(base, key=lambda x: x[0])],
        "correlations": [entry for _, entry in sorted(correlations, key=lambda x: x[0])],
        "generating": sorted(k for doc in docs for k in doc["generating"]),
        "margin": {k: margin[k] for k in sorted(margin, key=place.__getitem__)},
        "infos": {k: infos[k] for k in sorted(infos, key=place.__getitem__)},
    }
