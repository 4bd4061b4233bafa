"""Sigma selection on Elasticsearch: case-insensitive query DSL (ztsoc) against pySigma's Lucene query strings.

    .venv/bin/python bench/sigma_es.py [--es http://127.0.0.1:9200] [--files N] [--rules rules/windows]

Events: the EVTX files of ``../shared/data/evtx-attack-samples`` (our EVTX reader), written once
to a fresh index prefix (dropped afterwards). Rules: SigmaHQ ``rules/windows`` with the ``ztsoc``
pipeline. For every rule, both queries are run over the whole store with ``scan`` (the path
``soc detect run`` takes) and each hit is confirmed by the rule's predicate:

- baseline: pySigma's Lucene backend (``query_string``; keyword matching is case-sensitive, so
  it misses what Sigma matches, e.g. ``\\WmiPrvSe.exe`` against ``\\WmiPrvSE.exe``);
- ztsoc: ``detections.sigma.es_dsl`` (``term``/``prefix``/``wildcard`` with ``case_insensitive``).

Prints wall time, hits shipped to Python and (rule, event) matches for each, and the matches
the embedded engine finds (the reference: ztsoc must find all of them, the baseline does not).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

# this folder holds a sigma.py: keep it off sys.path so `import sigma` finds pySigma
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sigma import read_events  # noqa: E402
from detections.sigma.engine import compile_ruleset  # noqa: E402
from detections.sigma.es_eval import convert, dsl_queries  # noqa: E402
from detections.sigma.loader import load_rules  # noqa: E402
from detections.sigma.matcher import EventView  # noqa: E402
from eventstore.errors import StoreError  # noqa: E402
from eventstore.es_store import ElasticsearchStore  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--es", default="http://127.0.0.1:9200")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--rules", default="rules/windows")
    ap.add_argument("--files", type=int, default=0, help="only the first N EVTX files (0: all)")
    args = ap.parse_args()
    files = sorted((args.data / "evtx-attack-samples").rglob("*.evtx"))
    if not files:
        print(f"no EVTX under {args.data}", file=sys.stderr)
        return 2
    files = files[: args.files] if args.files else files
    events = read_events(files)
    cs = compile_ruleset(load_rules([args.data / "sigma" / args.rules], shipped=False))
    reference = {(cr.key, str(e["event.id"])) for e in events for cr in cs.matcher.match(e)}
    store = ElasticsearchStore(args.es, prefix=f"ztsoc-bench-{uuid.uuid4().hex[:8]}", request_timeout=300)
    store.init()
    try:
        store.write_events(events)
        store.count()  # refresh once, outside the timings
        print(f"{len(cs.base)} rules, {len(events):,} events; the embedded engine finds {len(reference):,} "
              f"(rule, event) matches")
        lucene = {k: q.query for k, q in convert(cs).items()}
        sides = {"pySigma Lucene (baseline)": lambda cr: store.scan(lucene[cr.key]),
                 "ztsoc query DSL": lambda cr: store.scan_dsl(dsl_queries(cs)[cr.key])}
        for name, run in sides.items():
            found: set[tuple[str, str]] = set()
            hits = refused = 0
            t0 = time.perf_counter()
            for cr in cs.base:
                try:
                    for doc in run(cr):
                        hits += 1
                        if cr.predicate(EventView(doc)):
                            found.add((cr.key, str(doc["event.id"])))
                except StoreError:
                    refused += 1
            seconds = time.perf_counter() - t0
            print(f"{name:27}: {seconds:7.1f} s, {hits:9,} hits shipped, {len(found):7,} matches "
                  f"({len(reference - found):,} of the reference missed), {refused} rules refused")
    finally:
        store.drop()
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
