"""Live capture under load: packets lost at a given rate on loopback, ztsoc's fast engine vs scapy's sniffer.

    .venv/bin/python bench/live.py                      # 20k, 50k and 100k packets/s, 5 s each
    .venv/bin/python bench/live.py --rates 50000 --seconds 10

A child process (a small C program compiled on the spot when ``cc`` exists, else Python)
sends UDP datagrams to 127.0.0.1 at a paced rate from 256 sockets (256 flows; a bound sink socket that never reads keeps the kernel from answering with ICMP).
The capture runs in this process with a BPF filter on the bench's port, so the rest of
the machine's loopback traffic is not counted, and meters every packet into flows (the
events go to an in-memory list: this measures the capture, not the store). Loss is what
the sender sent minus what the capture saw; the kernel's own drop counter is printed
beside it. Needs root (raw sockets).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PORT = 40999
SENDER = r"""
import socket, sys, time
rate, seconds, port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(256)]
payload = b"z" * 64
sent = 0
start = time.perf_counter()
total = int(rate * seconds)
while sent < total:
    due = min(total, int((time.perf_counter() - start) * rate) + 1)
    while sent < due:
        socks[sent & 255].sendto(payload, ("127.0.0.1", port))
        sent += 1
    if sent < total and (sent / rate) > time.perf_counter() - start + 0.0005:
        time.sleep(0.0002)
print(sent, time.perf_counter() - start)
"""


C_SENDER = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    long rate = atol(argv[1]); double seconds = atof(argv[2]); int port = atoi(argv[3]);
    int socks[256]; for (int i = 0; i < 256; i++) socks[i] = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in dst = {0}; dst.sin_family = AF_INET; dst.sin_port = htons(port);
    dst.sin_addr.s_addr = htonl(0x7f000001);
    char payload[64] = {0}; long total = (long)(rate * seconds), sent = 0; double start = now();
    while (sent < total) {
        long due = (long)((now() - start) * rate) + 1; if (due > total) due = total;
        while (sent < due) { sendto(socks[sent & 255], payload, sizeof payload, 0, (struct sockaddr *)&dst, sizeof dst); sent++; }
        if (sent < total) usleep(100);
    }
    printf("%ld %f\n", sent, now() - start); return 0;
}
"""
_SENDER_CMD: list[str] = []


def sender_command() -> list[str]:
    """A compiled C sender when a C compiler is there (Python cannot pace 100k packets/s on a busy box)."""
    if not _SENDER_CMD:
        import shutil
        import tempfile

        cc = shutil.which("cc") or shutil.which("gcc")
        if cc:
            d = Path(tempfile.mkdtemp(prefix="ztsoc-live-"))
            (d / "send.c").write_text(C_SENDER)
            if subprocess.run([cc, "-O2", "-o", str(d / "send"), str(d / "send.c")], capture_output=True).returncode == 0:
                _SENDER_CMD.append(str(d / "send"))
        if not _SENDER_CMD:
            _SENDER_CMD.extend([sys.executable, "-c", SENDER])
    return _SENDER_CMD


def send(rate: int, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([*sender_command(), str(rate), str(seconds), str(PORT)], stdout=subprocess.PIPE, text=True)


def ztsoc_run(rate: int, seconds: float) -> dict[str, Any]:
    from collectors.live import LiveCapture

    events: list[dict[str, Any]] = []
    cap = LiveCapture("lo", lambda evs: (events.extend(evs), len(evs))[1], bpf=f"udp and dst port {PORT}")
    ready = threading.Event()
    th = threading.Thread(target=cap.run, kwargs={"ready": ready})
    th.start()
    ready.wait(5)
    time.sleep(0.3)
    sender = send(rate, seconds)
    out, _ = sender.communicate()
    sent, took = out.split()
    done = time.perf_counter()
    cap.stop()  # the capture meters what the kernel still holds, then stops
    th.join()
    lag = time.perf_counter() - done
    s = cap.stats
    return {"sent": int(sent), "send_seconds": float(took), "seen": s.packets, "kernel_drops": s.kernel_drops,
            "lag_seconds": round(lag, 2), "metered_per_second": round(s.packets / (float(took) + lag)),
            "flows": sum(1 for e in events if e["event.dataset"] == "network.flow"), "filter": s.bpf_compiler}


def scapy_run(rate: int, seconds: float) -> dict[str, Any]:
    from scapy.sendrecv import AsyncSniffer

    seen = [0]

    def count(_: Any) -> None:
        seen[0] += 1

    sniffer = AsyncSniffer(iface="lo", filter=f"udp and dst port {PORT}", store=False, prn=count)
    sniffer.start()
    time.sleep(1.0)
    sender = send(rate, seconds)
    out, _ = sender.communicate()
    sent, took = out.split()
    time.sleep(1.0)
    sniffer.stop()
    # scapy sees loopback packets twice (out and in); count distinct by halving when it does
    return {"sent": int(sent), "send_seconds": float(took), "seen": seen[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=int, nargs="+", default=[20_000, 50_000, 100_000])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--scapy-rates", type=int, nargs="*", default=[5_000, 50_000])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/live.py needs root (raw sockets)", file=sys.stderr)
        return 2
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", PORT))  # never read: the kernel drops quietly instead of answering ICMP
    rows = []
    for rate in args.rates:
        r = ztsoc_run(rate, args.seconds)
        rows.append(("ztsoc fast (AF_PACKET + meter)", rate, r))
        print(json.dumps({"engine": "ztsoc", "rate": rate, **r}), file=sys.stderr, flush=True)
    for rate in args.scapy_rates:
        r = scapy_run(rate, args.seconds)
        rows.append(("scapy AsyncSniffer (prn, no store)", rate, r))
        print(json.dumps({"engine": "scapy", "rate": rate, **r}), file=sys.stderr, flush=True)
    sink.close()
    print(f"{'engine':36s} {'target/s':>9s} {'sent/s':>9s} {'sent':>9s} {'captured':>9s} {'lost':>8s} {'loss %':>7s} "
          f"{'kernel drops':>12s} {'lag s':>6s}")
    for name, rate, r in rows:
        seen = r["seen"]
        if name.startswith("scapy") and seen > r["sent"]:
            seen //= 2  # loopback: scapy counts the outgoing and the incoming copy
        lost = max(0, r["sent"] - seen)
        print(f"{name:36s} {rate:9,d} {r['sent'] / r['send_seconds']:9,.0f} {r['sent']:9,d} {seen:9,d} {lost:8,d} "
              f"{100.0 * lost / r['sent']:7.2f} {r.get('kernel_drops', '-')!s:>12s} {r.get('lag_seconds', '-')!s:>6s}")
    print("lag: seconds the capture needed, after the sender stopped, to meter what the kernel had queued")
    return 0


if __name__ == "__main__":
    sys.exit(main())
