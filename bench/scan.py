"""``soc scan`` end to end against Zircolite's method, same rules, same EVTX files, one run.

    .venv/bin/python bench/scan.py            # the EVTX of ../shared/data/evtx-attack-samples
    .venv/bin/python bench/scan.py --quick    # the first 40 files
    .venv/bin/python bench/scan.py --repeat 3 # each case 3 times, the run of least CPU shown (a busy machine)

Both sides run as child processes from files on disk to matches written out, and are timed as
wall time and CPU time (``getrusage`` of the child; on a shared 2-core machine CPU time is the
fair figure, wall time what a responder waits):

- ztsoc: ``soc scan FILES --rules rules/windows --no-shipped --format jsonl``: EVTX read by our
  reader, rules from the compiled-rule cache, matched in memory, one JSON line per match. Cold
  (an empty cache folder: load + compile) and warm (the cache written by the cold run).
- baseline: Zircolite's method (Zircolite is not on PyPI): the events in an in-memory SQLite
  table (one column per field, ``COLLATE NOCASE``, a Python ``REGEXP``), every rule converted
  by pySigma's SQLite backend with the same ``ztsoc`` field mapping and run as one SQL query,
  the matches written as JSON lines. The events are read with our EVTX reader (faster than
  Zircolite's evtx_dump + flattening, so the baseline is favoured). "pre-converted" is a run of
  its own as Zircolite runs with its shipped rule packs: the (rule, SQL) pairs the first run
  converted are loaded from JSON, so no rule is parsed and pySigma is not imported (an earlier
  version of this bench subtracted only the conversion and still counted parsing the YAML
  rules, ~1.3 CPU s, against the baseline).

Every match the baseline finds must be found by ``soc scan``. Both sides' children run with the
project's modules compiled to bytecode beforehand, as an installed package has them
(``bench/_bytecode.py``: the sandbox's ``PYTHONDONTWRITEBYTECODE`` is dropped for them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"


def _child(cmd: list[str], env: dict[str, str], out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process, its stdout to ``out``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(out, "wb") as fh:
        subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _pairs(path: Path) -> set[tuple[str, str]]:
    out = set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                out.add((str(d["rule.id"]), str(d["event.id"])))
    return out


def baseline_main(files: list[Path], rules_dir: Path, out: Path, packed: Path | None, pack_to: Path | None) -> None:
    """The baseline's whole job in this (child) process.

    ``packed``: the rules as a pre-converted pack (JSON of (rule, SQL), as Zircolite ships them):
    loaded instead of parsing and converting the rules, so pySigma is never imported. Otherwise
    the rules are parsed and converted here (their conversion time reported on stderr), and
    ``pack_to`` (when given) receives the pack."""
    from bench._zircolite import events_table, read_events, run_queries  # type: ignore[import-not-found]

    events = read_events(files)
    db = events_table(events)
    t_convert = 0.0
    if packed is not None:
        queries = [(str(k), str(q)) for k, q in json.loads(packed.read_text(encoding="utf-8"))]
    else:
        from sigma.rule import SigmaRule

        from bench.sigma import convert_queries  # type: ignore[import-not-found]
        from detections.sigma.loader import load_rules

        t0 = time.process_time()
        rules = [r for r in load_rules([rules_dir], shipped=False).rules if isinstance(r.rule, SigmaRule)]
        queries = convert_queries(rules)
        t_convert = time.process_time() - t0
        if pack_to is not None:
            pack_to.write_text(json.dumps(queries), encoding="utf-8")
    found = run_queries(db, queries, events)
    with open(out, "w", encoding="utf-8") as fh:
        for key, eid in sorted(found):
            fh.write(json.dumps({"rule.id": key, "event.id": eid}) + "\n")
    print(json.dumps({"convert_seconds": t_convert}), file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description="soc scan end to end vs Zircolite's method")
    ap.add_argument("--quick", action="store_true", help="the first 40 EVTX files")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each case (both sides) N times and show the run of least CPU time")
    ap.add_argument("--baseline-child", nargs=2, metavar=("LIST", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--packed", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--pack-to", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    rules_dir = args.data / "sigma" / "rules" / "windows"
    if args.baseline_child:
        files = [Path(p) for p in Path(args.baseline_child[0]).read_text().splitlines()]
        baseline_main(files, rules_dir, Path(args.baseline_child[1]), args.packed, args.pack_to)
        return 0
    files = sorted((args.data / "evtx-attack-samples").rglob("*.evtx"))
    if not files or not rules_dir.is_dir():
        print(f"no EVTX or rules under {args.data}", file=sys.stderr)
        return 2
    files = files[:40] if args.quick else files
    from bench._bytecode import bytecode_env  # type: ignore[import-not-found]

    soc = [sys.executable, "-c", "from soc_cli.main import main; main()"]
    with tempfile.TemporaryDirectory(prefix="ztsoc-bench-scan-") as tmp:
        t = Path(tmp)
        env = bytecode_env({**os.environ, "SOC_CACHE_DIR": str(t / "cache"), "PYTHONPATH": str(ROOT)})
        lst = t / "files.txt"
        lst.write_text("\n".join(str(f) for f in files))
        scan = [*soc, "scan", *map(str, files), "--rules", str(rules_dir), "--no-shipped", "--format", "jsonl"]
        runs = max(1, args.repeat)

        def best(case: list[str], out: str, cache: str) -> tuple[float, float]:
            return min((_child(case, {**env, "SOC_CACHE_DIR": str(t / cache.format(n=n))}, t / out)
                        for n in range(runs)), key=lambda r: r[1])

        cpus = len(os.sched_getaffinity(0))
        # a fresh cache folder each time; --jobs 1: one process compiles, --jobs N: forked workers share it
        cold = best([*scan, "--jobs", "1"], "cold.jsonl", "cache-cold-{n}")
        cold_par = best([*scan, "--jobs", str(cpus)], "cold-parallel.jsonl", "cache-cold-parallel-{n}")
        warm = best(scan, "warm.jsonl", "cache-cold-0")  # the cache the first cold run wrote
        serial = best([*scan, "--jobs", "1"], "serial.jsonl", "cache-cold-0")
        par = best([*scan, "--jobs", str(cpus)], "parallel.jsonl", "cache-cold-0")
        child = [sys.executable, __file__, "--data", str(args.data), "--baseline-child", str(lst)]
        pack = t / "rules-pack.json"

        def baseline_best(extra_args: list[str], out: str) -> tuple[float, float, dict[str, float]]:
            runs_: list[tuple[float, float, dict[str, float]]] = []
            for _n in range(runs):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                proc = subprocess.run([*child, str(t / out), *extra_args], env=env, stderr=subprocess.PIPE,
                                      text=True, check=False)
                wall = time.perf_counter() - t0
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if proc.returncode != 0:
                    raise SystemExit(f"the baseline failed:\n{proc.stderr}")
                runs_.append((wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                              json.loads(proc.stderr.strip().splitlines()[-1])))
            return min(runs_, key=lambda r: r[1])

        base_wall, base_cpu, extra = baseline_best(["--pack-to", str(pack)], "base.jsonl")
        packed_wall, packed_cpu, _ = baseline_best(["--packed", str(pack)], "packed.jsonl")
        mine, theirs = _pairs(t / "warm.jsonl"), _pairs(t / "base.jsonl")
        assert (_pairs(t / "cold.jsonl") == _pairs(t / "cold-parallel.jsonl") == mine == _pairs(t / "serial.jsonl")
                == _pairs(t / "parallel.jsonl")), "the scans disagree"
        def cached_set(folder: str) -> bytes:
            return next(p for p in (t / folder / "sigma").glob("*.json") if p.name != "file-digests.json").read_bytes()

        same_cache = cached_set("cache-cold-0") == cached_set("cache-cold-parallel-0")
        assert _pairs(t / "packed.jsonl") == theirs, "the baseline's two forms disagree"
    conv = extra["convert_seconds"]
    from detections.sigma import native  # the children decide alike (same sources, build and environment)

    print(f"{len(files)} EVTX files, SigmaHQ rules/windows; wall s / CPU s, end to end (read + rules + match + output)"
          + (f"; least CPU of {runs} runs each" if runs > 1 else "") + f"; matcher {native.MODULES.status()}")
    # two decimals: a warm scan is about a second, and a tenth of it is what a change moves
    print(f"  soc scan, cold, --jobs 1    : {cold[0]:7.2f} / {cold[1]:7.2f}   {len(mine):,} matches")
    print(f"  soc scan, cold, --jobs {cpus:<4} : {cold_par[0]:7.2f} / {cold_par[1]:7.2f}   (rules compiled by "
          f"{cpus} processes; cache file {'identical' if same_cache else 'DIFFERENT'} to one process's)")
    print(f"  soc scan, warm cache        : {warm[0]:7.2f} / {warm[1]:7.2f}   (default --jobs: idle CPUs; load "
          f"{os.getloadavg()[0]:.1f} on {cpus})")
    print(f"  soc scan, warm, --jobs 1    : {serial[0]:7.2f} / {serial[1]:7.2f}")
    print(f"  soc scan, warm, --jobs {cpus:<4} : {par[0]:7.2f} / {par[1]:7.2f}")
    print(f"  Zircolite's method          : {base_wall:7.2f} / {base_cpu:7.2f}   {len(theirs):,} matches")
    print(f"  ... rules pre-converted     : {packed_wall:7.2f} / {packed_cpu:7.2f}   (a rule pack of SQL loaded, "
          f"no rule parsed; parsing + conversion {conv:.2f} s)")
    print(f"speed-up (CPU): cold {base_cpu / cold[1]:.1f}x, warm --jobs 1 {base_cpu / serial[1]:.1f}x, "
          f"warm --jobs 1 vs pre-converted {packed_cpu / serial[1]:.1f}x")
    print(f"speed-up (wall, what a responder waits): cold --jobs 1 {base_wall / cold[0]:.1f}x, "
          f"cold --jobs {cpus} {base_wall / cold_par[0]:.1f}x, warm {base_wall / warm[0]:.1f}x, "
          f"warm --jobs 1 {base_wall / serial[0]:.1f}x, warm --jobs {cpus} {base_wall / par[0]:.1f}x; "
          f"vs pre-converted: warm {packed_wall / warm[0]:.1f}x, warm --jobs {cpus} {packed_wall / par[0]:.1f}x")
    missing = theirs - mine
    print(f"baseline matches also found by soc scan: {len(theirs) - len(missing):,} / {len(theirs):,}"
          f"   (soc scan only: {len(mine - theirs):,})")
    for key, eid in sorted(missing)[:20]:
        print(f"  missed: {key} on {eid}")
    return 0 if not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
