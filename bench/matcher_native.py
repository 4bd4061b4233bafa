"""The compiled Sigma matcher against its source: a warm scan's phases in process, CPU seconds.

    .venv/bin/python bench/matcher_native.py              # 7 rounds
    .venv/bin/python bench/matcher_native.py --rounds 3

Each round runs two child processes in turn (the order alternates from round to round): one with
``ZTSOC_PURE_PYTHON=1`` (``detections/sigma/matcher.py`` interpreted) and one without (the mypyc
build, when it is built and matches its source: ``detections/sigma/native.py``; the line of each
side says which ran). A child does what a warm ``soc scan --jobs 1`` does, phase by phase: SigmaHQ's
``rules/windows`` from the compiled-rule cache (written once, before the rounds), the EVTX of
``../shared/data/evtx-attack-samples`` read, then every event matched twice: the first pass also
builds the predicates and automata of the rules its events meet, the second is the match alone.
CPU time of each phase (``time.process_time``: the machine is shared), medians and ranges per side;
both sides must find the same matches. The children run with bytecode, as installed
(``bench/_bytecode.py``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/sigma.py would shadow pySigma (``import sigma``, when the cache is first written): keep bench/ off sys.path
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
PHASES = ("imports", "cache", "read", "match1", "match2")


def child(data: Path) -> None:
    started = time.process_time()
    import gc

    from collectors.base import read_all
    from collectors.evtx import EvtxReader
    from detections.sigma import native
    from detections.sigma.cache import load_compiled_cached
    from eventstore.gc_pause import gc_paused

    files = sorted((data / "evtx-attack-samples").rglob("*.evtx"))
    t = [time.process_time()]
    with gc_paused():
        _rs, cs, _info = load_compiled_cached([data / "sigma" / "rules" / "windows"], shipped=False)
        gc.freeze()
    t.append(time.process_time())
    reader = EvtxReader()
    events = [e for path in files for e in read_all(reader, path).events]
    t.append(time.process_time())
    match = cs.matcher.match
    counts = []
    with gc_paused():
        for _ in range(2):
            counts.append(sum(len(match(e, True)) for e in events))
            t.append(time.process_time())
    phases = [t[0] - started] + [b - a for a, b in itertools.pairwise(t)]
    print(json.dumps({"status": native.MODULES.status(), "events": len(events), "matches": counts,
                      **dict(zip(PHASES, phases, strict=True))}))


def main() -> int:
    ap = argparse.ArgumentParser(description="the compiled Sigma matcher against its source")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.data)
        return 0
    if not (args.data / "sigma" / "rules" / "windows").is_dir() or not (args.data / "evtx-attack-samples").is_dir():
        print(f"no SigmaHQ rules or EVTX under {args.data}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from bench._bytecode import bytecode_env  # type: ignore[import-not-found]

    runs: dict[str, list[dict[str, object]]] = {"interpreted": [], "compiled": []}
    with tempfile.TemporaryDirectory(prefix="ztsoc-bench-matcher-") as tmp:
        env = bytecode_env({**os.environ, "SOC_CACHE_DIR": tmp, "PYTHONPATH": str(ROOT)})
        env.pop("ZTSOC_PURE_PYTHON", None)

        def one(side: str) -> dict[str, object]:
            extra = {"ZTSOC_PURE_PYTHON": "1"} if side == "interpreted" else {}
            proc = subprocess.run([sys.executable, __file__, "--child", "--data", str(args.data)],
                                  env={**env, **extra}, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"the {side} child failed:\n{proc.stderr[-2000:]}")
            return dict(json.loads(proc.stdout.strip().splitlines()[-1]))

        one("compiled")  # writes the cache
        for n in range(max(1, args.rounds)):
            for side in ("interpreted", "compiled") if n % 2 == 0 else ("compiled", "interpreted"):
                runs[side].append(one(side))
    load = os.getloadavg()[0]
    first = runs["interpreted"][0]
    print(f"SigmaHQ rules/windows, {first['events']:,} events from the EVTX samples; CPU s, median (range) of "
          f"{len(runs['compiled'])} interleaved runs each; load {load:.1f} on {len(os.sched_getaffinity(0))} CPUs")
    print(f"  {'phase':8}" + "".join(f"{side:>26}" for side in runs))
    for phase in PHASES:
        cells = []
        for side in runs:
            values = [float(r[phase]) for r in runs[side]]  # type: ignore[arg-type]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        print(f"  {phase:8}" + "".join(f"{cell:>26}" for cell in cells))
    for side in runs:
        print(f"  {side}: {runs[side][0]['status']}; matches per pass {runs[side][0]['matches']}")
    matches = {json.dumps(r["matches"]) for side in runs for r in runs[side]}
    if len(matches) != 1:
        print(f"the two sides disagree: {sorted(matches)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
