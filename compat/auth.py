"""The auth-log collectors against real-world data in ``../shared/data`` (run on demand).

Checks, end to end through ``collectors.pipeline.ingest`` into a throw-away SQLite store:

- ``auth/OpenSSH_2k.log`` (and ``auth/Linux_2k.log``): at least 98% of lines become
  events; the rest are counted by reason. Also shows how many events got an
  ``event.action`` (a recognised auth message) and which actions.
- Every EVTX in ``evtx-attack-samples`` and ``sigma/regression_data``: ingests, and the
  records read equal the file's record count taken from its chunk headers (parser
  independent); the store holds one event per record of each distinct file.

Prints a report; exit 0 when every check holds, 1 otherwise.
Usage: ``.venv/bin/python compat/auth.py [--data DIR] [--json]``
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.base import read_all  # noqa: E402
from collectors.evtx import EvtxReader, header_record_count  # noqa: E402
from collectors.pipeline import ingest  # noqa: E402
from collectors.syslog import SyslogReader  # noqa: E402
from eventstore import open_store  # noqa: E402

MIN_LINE_SHARE = 0.98


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def check_syslog(data: Path, tmp: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("OpenSSH_2k.log", "Linux_2k.log"):
        path = data / "auth" / name
        if not path.exists():
            out.append({"file": name, "ok": False, "reason": "missing"})
            continue
        store = open_store(f"sqlite:///{tmp / (name + '.db')}")
        try:
            report = ingest(store, SyslogReader(), [path])
            lines = count_lines(path)
            docs = list(store.scan("*", fields=["event.action", "ztsoc.log.offset"]))
            actions = Counter(d.get("event.action") for d in docs)
            lines_read = len({d["ztsoc.log.offset"] for d in docs})  # "message repeated N times" makes N events
            stored = store.count()
        finally:
            store.close()
        share = lines_read / lines if lines else 0.0
        recognised = sum(n for a, n in actions.items() if a)
        out.append({
            "file": name, "lines": lines, "lines_read": lines_read, "events": report.events, "stored": stored,
            "share": round(share, 4),
            "problems": dict(report.problems), "recognised_auth_messages": recognised,
            "actions": dict(actions.most_common()), "ok": share >= MIN_LINE_SHARE and stored == report.events,
        })
    return out


def evtx_files(data: Path) -> list[Path]:
    found = glob.glob(str(data / "evtx-attack-samples" / "**" / "*.evtx"), recursive=True)
    found += glob.glob(str(data / "sigma" / "regression_data" / "**" / "*.evtx"), recursive=True)
    return sorted(Path(f) for f in found)


def check_evtx(data: Path, tmp: Path) -> dict[str, Any]:
    files = evtx_files(data)
    reader = EvtxReader()
    mismatches: list[dict[str, Any]] = []
    problems: Counter[str] = Counter()
    records = read = 0
    distinct: dict[str, int] = {}
    datasets: Counter[str] = Counter()
    for path in files:
        expected = header_record_count(path)
        result = read_all(reader, path, batch_size=5000)
        problems.update(p.reason for p in result.problems)
        records += expected
        read += len(result.events)
        distinct[reader.identity(path)] = len(result.events)
        datasets.update(e["event.dataset"] for e in result.events)
        if len(result.events) != expected:
            mismatches.append({"file": str(path.relative_to(data)), "records": expected, "events": len(result.events),
                               "problems": Counter(p.reason for p in result.problems)})
    store = open_store(f"sqlite:///{tmp / 'evtx.db'}")
    try:
        started = time.perf_counter()
        report = ingest(store, reader, files, batch_size=5000)
        elapsed = time.perf_counter() - started
        stored = store.count()
        logon = store.count("event.dataset:windows.security AND event.action:*")
    finally:
        store.close()
    return {
        "files": len(files), "records_by_headers": records, "events_read": read, "mismatches": mismatches,
        "problems": dict(problems), "stored": stored, "distinct_files": len(distinct),
        "expected_stored": sum(distinct.values()), "logon_family_events": logon,
        "ingest_seconds": round(elapsed, 2), "store_problems": dict(report.problems),
        "top_datasets": dict(datasets.most_common(8)),
        "ok": bool(files) and not mismatches and stored == sum(distinct.values()) and not report.problems,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"no reference data at {args.data}: nothing to check", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ztsoc-compat-auth-") as tmp:
        result: dict[str, Any] = {"syslog": check_syslog(args.data, Path(tmp)),
                                  "evtx": check_evtx(args.data, Path(tmp))}
    ok = all(r["ok"] for r in result["syslog"]) and result["evtx"]["ok"]
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0 if ok else 1
    for r in result["syslog"]:
        if "lines" not in r:
            print(f"syslog {r['file']}: MISSING")
            continue
        print(f"syslog {r['file']}: {r['lines_read']:,}/{r['lines']:,} lines became events ({r['share']:.1%}; "
              f"need {MIN_LINE_SHARE:.0%}) {'OK' if r['ok'] else 'FAIL'}; {r['events']:,} events, stored {r['stored']:,}; "
              f"problems {r['problems'] or 'none'}")
        print(f"    recognised auth messages: {r['recognised_auth_messages']:,}; actions: "
              + ", ".join(f"{a}={n}" for a, n in r["actions"].items() if a))
    e = result["evtx"]
    print(f"evtx: {e['files']} files, {e['events_read']:,} events for {e['records_by_headers']:,} records "
          f"(chunk headers); {len(e['mismatches'])} files differ; problems {e['problems'] or 'none'}")
    print(f"    stored {e['stored']:,} = {e['expected_stored']:,} records of {e['distinct_files']} distinct files "
          f"(identical files are one source) in {e['ingest_seconds']}s; logon-family events {e['logon_family_events']:,}"
          f" {'OK' if e['ok'] else 'FAIL'}")
    for m in e["mismatches"][:20]:
        print(f"    differs: {m['file']}: {m['events']} events / {m['records']} records; {dict(m['problems'])}")
    print("datasets:", ", ".join(f"{k}={v}" for k, v in e["top_datasets"].items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
