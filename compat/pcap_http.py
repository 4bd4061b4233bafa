"""HTTP requests per capture, ztsoc against tshark, on every capture in ../shared/data/pcaps.

    .venv/bin/python compat/pcap_http.py [--data DIR] [--limit N] [--tshark-cache FILE]
                                         [--json OUT] [--baseline OLD.json]

tshark's answer is the number of HTTP requests it dissects (``http.request.method``
occurrences, so pipelined requests in one frame count each), with TCP reassembly on
(its default) and HTTP decoded on its own ports plus every port ztsoc saw HTTP on
(``-d tcp.port==N,http``): the two then look at the same conversations. tshark's
answers do not change between runs of ztsoc, so ``--tshark-cache`` keeps them. Requests
tshark finds quoted inside ICMP errors (a "fragmentation needed" quotes the segment it
refuses) are not requests and are left out, and so is HTTP over UDP (SSDP's M-SEARCH):
ztsoc reads HTTP on TCP only.

``--baseline`` takes the ``--json`` report of an earlier run (say, before a change) and
lists the files whose count moved, and whether each moved towards tshark's.

Reads ../shared/data only; writes nothing but the optional JSON report and cache.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.base import read_all  # noqa: E402
from collectors.pcap.collector import PcapReader  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "pcaps"


def ours(path: Path) -> tuple[int, list[int], int]:
    """(HTTP request events, the server ports they were seen on, decoder-error problems)."""
    res = read_all(PcapReader(idle_timeout=1e9, active_timeout=1e9), path, batch_size=100_000)
    http = [e for e in res.events if e.get("event.dataset") == "network.http"]
    ports = sorted({int(e["destination.port"]) for e in http if "destination.port" in e})
    errors = sum(1 for p in res.problems if p.reason.startswith("decoder error"))
    return len(http), ports, errors


def tshark_requests(path: Path, ports: list[int]) -> int:
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "http.request && tcp && !icmp && !icmpv6", "-T", "fields", "-e", "http.request.method",
           "-E", "occurrence=a", "-E", "aggregator=|"]
    for port in ports:
        cmd[1:1] = ["-d", f"tcp.port=={port},http"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return sum(len(line.split("|")) for line in proc.stdout.splitlines() if line.strip())


def check(data: Path, limit: int | None, cache_path: Path | None) -> dict[str, Any]:
    files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap", ".gz"))
    if limit:
        files = files[:limit]
    cache: dict[str, int] = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
    report: dict[str, Any] = {"files": {}, "crashed": [], "decoder_errors": 0}
    for path in files:
        try:
            n, ports, errors = ours(path)
        except Exception as exc:  # the point of a compat run: a crash is listed, the rest goes on
            report["crashed"].append({"file": path.name, "error": f"{type(exc).__name__}: {exc}",
                                      "trace": traceback.format_exc(limit=3)})
            continue
        report["decoder_errors"] += errors
        key = f"{path.name}|{','.join(map(str, ports))}"
        if key not in cache:
            cache[key] = tshark_requests(path, ports)
        if n or cache[key]:
            report["files"][path.name] = {"ztsoc": n, "tshark": cache[key]}
    if cache_path:
        cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True))
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--tshark-cache", type=Path)
    ap.add_argument("--json", type=Path, help="write the per-file counts here")
    ap.add_argument("--baseline", type=Path, help="an earlier --json report to compare with")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"no reference data at {args.data}: nothing to check", file=sys.stderr)
        return 0
    rep = check(args.data, args.limit, args.tshark_cache)
    files = rep["files"]
    same = sum(1 for f in files.values() if f["ztsoc"] == f["tshark"])
    print(f"captures with HTTP: {len(files)}, crashed: {len(rep['crashed'])}, decoder errors: {rep['decoder_errors']}")
    print(f"HTTP requests: ztsoc {sum(f['ztsoc'] for f in files.values())}, "
          f"tshark {sum(f['tshark'] for f in files.values())}; files with the same count: {same}/{len(files)}")
    for c in rep["crashed"]:
        print(f"  CRASH {c['file']}: {c['error']}")
    if args.baseline:
        old = json.loads(args.baseline.read_text())["files"]
        print(f"before: ztsoc {sum(f['ztsoc'] for f in old.values())}; files whose count moved:")
        for name in sorted(set(old) | set(files)):
            before = old.get(name, {}).get("ztsoc", 0)
            now = files.get(name, {}).get("ztsoc", 0)
            theirs = files.get(name, old.get(name, {})).get("tshark", 0)
            if before != now:
                toward = "towards tshark" if abs(now - theirs) < abs(before - theirs) else (
                    "away from tshark" if abs(now - theirs) > abs(before - theirs) else "as far from tshark")
                print(f"  {name}: {before} -> {now} (tshark {theirs}): {toward}")
    else:
        for name, f in sorted(files.items()):
            if f["ztsoc"] != f["tshark"]:
                print(f"  {name}: ztsoc {f['ztsoc']}, tshark {f['tshark']}")
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))
    return 1 if rep["crashed"] or rep["decoder_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
