"""SigmaHQ's Windows rules over the EVTX samples on both stores: the same alerts, and how long each took.

    .venv/bin/python compat/sigma_both_stores.py [--es http://127.0.0.1:9200] [--data ../shared/data]
        [--rules rules/windows] [--files N]

Reads every EVTX file of ``evtx-attack-samples`` with our EVTX reader, writes the events to a
fresh SQLite store and to a fresh Elasticsearch prefix (dropped afterwards), runs
``run_detections`` on each with the same compiled rules, and prints the table of the closing
note: rules, events, alerts and rules fired on each side, alerts identical on both (id, rule,
entity, first/last seen, evidence), and the detection wall time of each side; then every
difference. Exit 1 if any alert differs. The sampled version runs in ``make test``
(``tests/test_sigma_both_stores.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# this folder holds a sigma.py: keep it off sys.path so `import sigma` finds pySigma
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sigma import read_events  # noqa: E402
from detections.sigma.engine import compile_ruleset  # noqa: E402
from detections.sigma.loader import load_rules  # noqa: E402
from tests.sigmadiff import compare  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--es", default="http://127.0.0.1:9200")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--rules", default="rules/windows", help="folder under <data>/sigma")
    ap.add_argument("--files", type=int, default=0, help="only the first N EVTX files (0: all)")
    args = ap.parse_args()
    files = sorted((args.data / "evtx-attack-samples").rglob("*.evtx"))
    if args.files:
        files = files[: args.files]
    t0 = time.perf_counter()
    events = read_events(files)
    rs = load_rules([args.data / "sigma" / args.rules], shipped=False)
    cs = compile_ruleset(rs)
    print(f"{len(cs.base)} rules ({len(cs.problems)} not usable) from sigma/{args.rules}, {len(events):,} events "
          f"from {len(files)} EVTX files; read and compiled in {time.perf_counter() - t0:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = compare(cs, events, args.es, Path(tmp) / "soc.db")
    print(result.table())
    print(f"ingest: SQLite {result.seconds['sqlite_ingest']:.1f} s, Elasticsearch {result.seconds['es_ingest']:.1f} s")
    diffs = result.differences
    print(f"alerts differing: {len(diffs)}")
    for line in diffs[:50]:
        print("  " + line)
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
