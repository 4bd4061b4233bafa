"""How fast a capture becomes events: ztsoc's pcap collector against tshark, scapy and NFStream.

    .venv/bin/python bench/pcap.py                   # 1,000,000 packets (about 460 MB)
    .venv/bin/python bench/pcap.py --packets 100000  # a quick run
    .venv/bin/python bench/pcap.py --concurrent      # peak RSS against open flows (10k, 100k, 1M)

One synthetic capture (``bench/pcapgen.py``: interleaved TCP sessions with handshakes,
HTTP, TLS and DNS) is read by every contender in the same run:

- ztsoc: the reader + flow meter + DNS/HTTP/TLS decoders (and flows only, ``--no-apps``),
  each in a child process so its peak RSS is its own; memory flatness is shown by running
  on a quarter of the capture as well;
- ``tshark -T fields`` extracting the 5-tuple of every packet;
- scapy's ``PcapReader`` (dissecting every packet and reading the 5-tuple) on a prefix,
  extrapolated, because a full run would take tens of minutes (said in the table);
- NFStream (C flow meter over nDPI), when ``import nfstream`` works (``pip install nfstream``;
  it is not a project dependency);
- end to end: ``collectors.pipeline.ingest`` into the embedded SQLite store.

Rates are packets per second of wall time and of CPU time (this machine is shared; CPU
time is the fairer figure, children included). Ratios are ztsoc's packets/s over the
contender's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pcapgen import write_pcap  # noqa: E402


def native_status() -> str:
    """Which code the children run: the compiled hot path or its sources (a child decides the same)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = "from collectors.pcap import native; print(native.MODULES.status())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip()

OURS = r"""
import json, resource, sys, time
from collections import Counter
from collectors.pcap.collector import PcapReader
reader = PcapReader(no_apps=sys.argv[2] == "flows")
t0, c0 = time.perf_counter(), time.process_time()
counts = Counter()
for batch in reader.batches(__import__("pathlib").Path(sys.argv[1]), None, 5000):
    for e in batch.events:
        counts[e["event.dataset"]] += 1
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall": wall, "cpu": cpu, "events": dict(counts),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

E2E = r"""
import json, resource, sys, time
from collectors.pcap.collector import PcapReader
from collectors.pipeline import ingest
from eventstore import open_store
store = open_store("sqlite:///" + sys.argv[2])
t0, c0 = time.perf_counter(), time.process_time()
rep = ingest(store, PcapReader(), [sys.argv[1]], batch_size=5000)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall": wall, "cpu": cpu, "events": rep.events, "written": rep.written,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CONCURRENT = r"""
import json, resource, sys, time
from collectors.pcap.collector import PcapReader
reader = PcapReader(max_flows=int(sys.argv[2]))
t0 = time.process_time()
flows = evicted = 0
for batch in reader.batches(__import__("pathlib").Path(sys.argv[1]), None, 5000):
    for e in batch.events:
        flows += 1
        evicted += e["event.reason"] == "evicted"
    del batch, e  # as the ingest pipeline does: a batch is let go before the next is made
print(json.dumps({"cpu": time.process_time() - t0, "flows": flows, "evicted": evicted,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_concurrent(path: Path, flows: int) -> Path:
    """``flows`` UDP flows all open at once: every flow's first packet, then every flow's second."""
    import struct

    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    with open(path, "wb") as fh:
        fh.write(head)
        for rnd in range(2):
            out = []
            for i in range(flows):
                src = struct.pack("!I", 0x0A000000 + (i >> 8))
                ip = (b"\x45\x00\x00\x21\x00\x00\x00\x00\x40\x11\x00\x00" + src + b"\xc0\x00\x02\x01")
                udp = struct.pack("!HHHH", 1024 + (i & 0xFF), 9999, 13, 0) + b"x"
                frame = eth + ip + udp
                out.append(struct.pack("<IIII", 1_700_000_000 + rnd * 10, i % 1_000_000, len(frame), len(frame)) + frame)
                if len(out) >= 10_000:  # small pieces: a child forked from a big parent reports the parent's RSS
                    fh.write(b"".join(out))
                    out.clear()
            fh.write(b"".join(out))
    return path


def concurrent(tmp: Path) -> None:
    """Peak RSS of ``soc ingest pcap`` against the number of flows open at once: with the default
    cap (``MeterConfig.max_flows``), with ``--max-flows 10000``, and without a cap (up to 100k)."""
    from collectors.pcap.flows import MeterConfig

    cap = MeterConfig().max_flows
    print(f"{'open flows':>10s} {'max_flows':>10s} {'peak RSS MB':>12s} {'flows out':>10s} {'evicted':>9s} {'CPU s':>7s}")
    for flows in (10_000, 100_000, 1_000_000):
        path = write_concurrent(tmp / f"concurrent-{flows}.pcap", flows)
        for limit in dict.fromkeys((cap, 10_000, 10**9) if flows <= 100_000 else (cap, 10_000)):  # (once each)
            r = child(CONCURRENT, str(path), str(limit))
            shown = "none" if limit == 10**9 else f"{limit:,}"
            print(f"{flows:10,d} {shown:>10s} {r['rss_mb']:12.0f} {r['flows']:10,d} {r['evicted']:9,d} {r['cpu']:7.1f}",
                  flush=True)
        path.unlink()


NFSTREAM = r"""
import json, resource, sys, time
from nfstream import NFStreamer
t0, c0 = time.perf_counter(), time.process_time()
flows = 0
for _ in NFStreamer(source=sys.argv[1], n_meters=int(sys.argv[2]), statistical_analysis=False):
    flows += 1
wall = time.perf_counter() - t0
ru_self, ru_kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru_self.ru_utime + ru_self.ru_stime + ru_kids.ru_utime + ru_kids.ru_stime
print(json.dumps({"wall": wall, "cpu": cpu, "flows": flows, "rss_mb": max(ru_self.ru_maxrss, ru_kids.ru_maxrss) / 1024}))
"""


def child(code: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-2000:])
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def tshark(path: Path) -> dict[str, Any] | None:
    exe = shutil.which("tshark")
    if exe is None:
        return None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "-n", "-r", str(path), "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto",
                           "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = proc.stdout.count(b"\n")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "lines": lines, "rss_mb": after.ru_maxrss / 1024}


def scapy_prefix(path: Path, limit: int) -> dict[str, Any]:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import PcapReader

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    tuples = 0
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if IP in pkt:
                ip = pkt[IP]
                l4 = pkt.getlayer(TCP) or pkt.getlayer(UDP)
                if l4 is not None:
                    tuples += bool((ip.src, ip.dst, ip.proto, l4.sport, l4.dport))
            n += 1
            if n >= limit:
                break
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "packets": n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--scapy-packets", type=int, default=20_000, help="prefix scapy reads (then extrapolated)")
    ap.add_argument("--keep", type=Path, help="write the capture here and keep it")
    ap.add_argument("--skip", nargs="*", default=[], choices=["tshark", "scapy", "nfstream", "e2e", "flows"])
    ap.add_argument("--concurrent", action="store_true", help="only: peak RSS against flows open at once")
    args = ap.parse_args()
    if args.concurrent:
        tmp = Path(tempfile.mkdtemp(prefix="ztsoc-bench-pcap-"))
        try:
            concurrent(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="ztsoc-bench-pcap-"))
    try:
        path = args.keep or tmp / "bench.pcap"
        t0 = time.perf_counter()
        write_pcap(path, args.packets)
        quarter = write_pcap(tmp / "quarter.pcap", max(1, args.packets // 4))
        size_mb = path.stat().st_size / 1e6
        print(f"capture: {args.packets:,} packets, {size_mb:,.0f} MB, generated in {time.perf_counter() - t0:.1f}s",
              flush=True)
        print(f"ztsoc pcap hot path: {native_status()} (collectors/pcap/native.py)", flush=True)
        n = args.packets
        rows: list[tuple[str, float, float, str, str]] = []

        ours = child(OURS, str(path), "all")
        ev = ours["events"]
        total_events = sum(ev.values())
        rows.append(("ztsoc (flows + DNS/HTTP/TLS)", n / ours["wall"], n / ours["cpu"], f"{ours['rss_mb']:.0f}",
                     f"{total_events / ours['wall']:,.0f} events/s"))
        q = child(OURS, str(quarter), "all")
        print(f"ztsoc events: {json.dumps(ev)}; per second of reading (wall / CPU): "
              + ", ".join(f"{k.split('.')[1]} {v / ours['wall']:,.0f} / {v / ours['cpu']:,.0f}"
                          for k, v in sorted(ev.items())), flush=True)
        print(f"ztsoc peak RSS: {ours['rss_mb']:.0f} MB on the whole capture, {q['rss_mb']:.0f} MB on a quarter of it "
              f"(flat: the file is streamed)", flush=True)
        if "flows" not in args.skip:
            fl = child(OURS, str(path), "flows")
            rows.append(("ztsoc (flows only, --no-apps)", n / fl["wall"], n / fl["cpu"], f"{fl['rss_mb']:.0f}",
                         f"{sum(fl['events'].values()) / fl['wall']:,.0f} events/s"))
        if "tshark" not in args.skip:
            ts = tshark(path)
            if ts is None:
                print("tshark: not installed (apt install tshark)")
            else:
                rows.append(("tshark -T fields (5-tuple)", n / ts["wall"], n / ts["cpu"], f"{ts['rss_mb']:.0f}",
                             f"{ts['lines']:,} lines"))
        if "scapy" not in args.skip:
            sc = scapy_prefix(path, args.scapy_packets)
            rows.append((f"scapy PcapReader (first {sc['packets']:,} packets, extrapolated)", sc["packets"] / sc["wall"],
                         sc["packets"] / sc["cpu"], "-", f"~{n / (sc['packets'] / sc['wall']) / 60:,.0f} min for all"))
        if "nfstream" not in args.skip:
            try:
                import nfstream  # noqa: F401

                for meters in (1, 0):
                    nf = child(NFSTREAM, str(path), str(meters))
                    label = "NFStream (1 meter)" if meters == 1 else "NFStream (default meters)"
                    rows.append((label, n / nf["wall"], n / nf["cpu"], f"{nf['rss_mb']:.0f}", f"{nf['flows']:,} flows"))
            except ImportError:
                print("NFStream: not installed (pip install nfstream); not measured")
        if "e2e" not in args.skip:
            e2e = child(E2E, str(path), str(tmp / "bench.db"))
            rows.append(("ztsoc end to end into SQLite (ingest)", n / e2e["wall"], n / e2e["cpu"],
                         f"{e2e['rss_mb']:.0f}", f"{e2e['written'] / e2e['wall']:,.0f} events/s stored"))

        ours_wall, ours_cpu = rows[0][1], rows[0][2]
        print()
        print(f"{'contender':58s} {'pkts/s wall':>12s} {'pkts/s CPU':>12s} {'RSS MB':>7s}  "
              f"{'ztsoc x (wall)':>14s} {'ztsoc x (CPU)':>13s}  note")
        for name, wall, cpu, rss, note in rows:
            print(f"{name:58s} {wall:12,.0f} {cpu:12,.0f} {rss:>7s}  {ours_wall / wall:14.2f} {ours_cpu / cpu:13.2f}  {note}")
        print("\nthe ratios compare the first row (ztsoc with every decoder on) with each contender")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
