"""Check the pcap collector against the world: every capture in ../shared/data/pcaps, and tshark.

    .venv/bin/python compat/pcaps.py [--data DIR] [--limit N] [--json OUT] [--verbose]

1. Every capture is read by ``soc ingest pcap``'s reader (all decoders on): a crash is a
   failure; unreadable packets are counted per reason.
2. TCP and UDP conversations are compared with ``tshark -q -z conv,tcp -z conv,udp`` on
   packets (exact) and bytes. tshark prints bytes rounded down to kB/MB above 10,000, so
   ours are printed the same way before comparing. Flows are summed per conversation
   (address and port pairs) on both sides, and the meter runs with its timeouts out of
   the way, because tshark's table does not split conversations by time.
3. Conversations that disagree are listed with the most likely reason, found by asking
   tshark what the capture contains (tunnels, IP fragments, ICMP errors quoting headers).

Reads ../shared/data only; writes nothing but the optional JSON report.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.base import read_all  # noqa: E402
from collectors.pcap.collector import PcapReader  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "pcaps"
ROW = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+(\d+ \S+)\s+(\d+)\s+(\d+ \S+)\s+(\d+)\s+(\d+ \S+)\s")
Key = tuple[str, frozenset[tuple[str, int]]]
#: why tshark may see a conversation differently, and the display filter that finds the cause
CAUSES: dict[str, str] = {
    "tunnel (GRE, VXLAN, Teredo, IP-in-IP...): tshark counts the inner conversation, ztsoc the outer flow":
        "gre || vxlan || teredo || ip.proto == 4 || ip.proto == 41 || gtp || geneve || erspan || l2tp || mpls",
    "IP fragments: reassembly policies differ (overlaps, timeouts, limits)": "ip.flags.mf == 1 || ip.frag_offset > 0 || ipv6.fragment",
    "ICMP error quoting the conversation: tshark counts the quoted header too": "icmp.type == 3 || icmp.type == 11 || icmpv6.type <= 4",
    "malformed or truncated packets: tshark and ztsoc stop dissecting at different places": "_ws.malformed || _ws.expert.severity >= error",
}


def tshark_size(n: int) -> str:
    """Wireshark's format_size (SI units, integer division): what conv tables print."""
    if n >= 10 * 1000**3:
        return f"{n // 1000**3} GB"
    if n >= 10 * 1000**2:
        return f"{n // 1000**2} MB"
    if n >= 10 * 1000:
        return f"{n // 1000} kB"
    return f"{n} bytes"


def split_endpoint(text: str) -> tuple[str, int]:
    addr, _, port = text.rpartition(":")
    return addr, int(port)


def tshark_conversations(path: Path) -> dict[Key, list[Any]]:
    proc = subprocess.run(["tshark", "-n", "-q", "-r", str(path), "-z", "conv,tcp", "-z", "conv,udp"],
                          capture_output=True, text=True, timeout=300)
    out: dict[Key, list[Any]] = {}
    transport = ""
    for line in proc.stdout.splitlines():
        if line.startswith("TCP Conversations"):
            transport = "tcp"
        elif line.startswith("UDP Conversations"):
            transport = "udp"
        m = ROW.match(line)
        if m and transport:
            key = (transport, frozenset((split_endpoint(m.group(1)), split_endpoint(m.group(2)))))
            row = out.setdefault(key, [0, 0, []])
            row[0] += int(m.group(7))
            row[2].append(m.group(8))
    return out


def our_conversations(events: list[dict[str, Any]]) -> dict[Key, list[int]]:
    out: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        if e.get("event.dataset") != "network.flow" or e.get("network.transport") not in ("tcp", "udp"):
            continue
        key = (e["network.transport"], frozenset(((e["source.ip"], e["source.port"]),
                                                   (e["destination.ip"], e["destination.port"]))))
        out[key][0] += e["network.packets"]
        out[key][1] += e["network.bytes"]
    return out


def causes(path: Path) -> list[str]:
    found = []
    for reason, flt in CAUSES.items():
        proc = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", flt, "-T", "fields", "-e", "frame.number"],
                              capture_output=True, text=True, timeout=300)
        if proc.stdout.strip():
            found.append(reason)
    return found


def agree(ours: list[int] | None, theirs: list[Any]) -> bool:
    if ours is None or ours[0] != theirs[0]:
        return False
    if len(theirs[2]) == 1:
        return tshark_size(ours[1]) == theirs[2][0]
    # several tshark rows for one address pair (port reuse): compare the exact parts only
    return True


def check(data: Path, limit: int | None, verbose: bool) -> dict[str, Any]:
    files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap", ".gz"))
    if limit:
        files = files[:limit]
    report: dict[str, Any] = {"files": len(files), "crashed": [], "problems": Counter(), "conversations": 0,
                              "agree": 0, "disagree": [], "packets": 0, "seconds": 0.0}
    reader = PcapReader(idle_timeout=1e9, active_timeout=1e9)
    started = time.perf_counter()
    for i, path in enumerate(files):
        try:
            res = read_all(reader, path, batch_size=100_000)
        except Exception as exc:  # the point of this check: any crash is listed, and the rest goes on
            report["crashed"].append({"file": path.name, "error": f"{type(exc).__name__}: {exc}",
                                      "trace": traceback.format_exc(limit=3)})
            continue
        for p in res.problems:
            report["problems"][p.reason] += 1
        ours = our_conversations(res.events)
        theirs = tshark_conversations(path)
        file_causes: list[str] | None = None
        for key, row in theirs.items():
            report["conversations"] += 1
            mine = ours.get(key)
            if agree(mine, row):
                report["agree"] += 1
                continue
            if file_causes is None:
                file_causes = causes(path)
            ends = sorted(key[1])
            report["disagree"].append({
                "file": path.name, "transport": key[0], "a": f"{ends[0][0]}:{ends[0][1]}",
                "b": f"{ends[-1][0]}:{ends[-1][1]}", "tshark": f"{row[0]} pkts {'+'.join(row[2])}",
                "ztsoc": f"{mine[0]} pkts {tshark_size(mine[1])}" if mine else "no flow",
                "reason": "; ".join(file_causes) or "unexplained"})
        if verbose:
            print(f"[{i + 1}/{len(files)}] {path.name}: {len(res.events)} events, {len(theirs)} tshark conversations",
                  file=sys.stderr)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"no reference data at {args.data}: nothing to check", file=sys.stderr)
        return 0
    rep = check(args.data, args.limit, args.verbose)
    total, ok = rep["conversations"], rep["agree"]
    share = 100.0 * ok / total if total else 100.0
    print(f"captures: {rep['files']}, crashed: {len(rep['crashed'])}, time {rep['seconds']}s")
    for c in rep["crashed"]:
        print(f"  CRASH {c['file']}: {c['error']}")
    print(f"unreadable packets by reason: {dict(rep['problems'].most_common())}")
    print(f"TCP/UDP conversations: {total}, agreeing with tshark on packets and bytes: {ok} ({share:.2f}%)")
    fragments = sum(1 for d in rep["disagree"] if "IP fragments" in d["reason"])
    if fragments:
        rest = total - fragments
        print(f"  without the {fragments} conversations that differ in captures of IP fragments (both reassemble; "
              f"overlap policies and timeouts differ): {ok}/{rest} agree ({100.0 * ok / rest if rest else 100.0:.2f}%)")
    by_reason = Counter(d["reason"] for d in rep["disagree"])
    for reason, n in by_reason.most_common():
        print(f"  {n:4d}  {reason}")
    shown: Counter[str] = Counter()
    for d in rep["disagree"]:
        shown[d["file"]] += 1
        if shown[d["file"]] <= 3:  # a few per file: one capture can hold thousands of alike conversations
            print(f"    {d['file']} {d['transport']} {d['a']} <-> {d['b']}: tshark {d['tshark']}, ztsoc {d['ztsoc']}")
    for name, n in shown.items():
        if n > 3:
            print(f"    {name}: {n - 3} more like these")
    if args.json:
        rep["problems"] = dict(rep["problems"])
        args.json.write_text(json.dumps(rep, indent=2))
    return 0 if not rep["crashed"] and share >= 99.0 else 1


if __name__ == "__main__":
    sys.exit(main())
