"""The generated day must look like what the sensors write, incidents included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dpkt

from detections.ml.features import shannon_entropy as entropy
from playbooks.generators.workday import ATTACKER, DEMO_INCIDENTS, generate

END = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def test_day_without_incidents_is_quiet(tmp_path: Path) -> None:
    a = generate(tmp_path, seed=1, end=END, flows=100, logins=10)
    log = a.auth_log.read_text()
    assert ATTACKER not in log
    assert "Accepted publickey" in log
    assert a.auth_lines == len(log.splitlines())
    with a.pcap.open("rb") as fh:
        stamps = [ts for ts, _ in dpkt.pcap.Reader(fh)]
    assert len(stamps) == a.packets > 1000
    assert stamps == sorted(stamps)
    assert END.timestamp() - 86400 <= stamps[0] and stamps[-1] <= END.timestamp() + 60


def test_same_seed_same_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=3, end=END, flows=50, logins=5, incidents=("dns-tunnel",))
    b = generate(tmp_path / "b", seed=3, end=END, flows=50, logins=5, incidents=("dns-tunnel",))
    assert a.pcap.read_bytes() == b.pcap.read_bytes()
    assert a.auth_log.read_text() == b.auth_log.read_text()


def test_incidents_leave_their_traces(tmp_path: Path) -> None:
    a = generate(tmp_path, seed=2, end=END, flows=50, logins=5, incidents=DEMO_INCIDENTS)
    log = a.auth_log.read_text().splitlines()
    failures = [line for line in log if "Failed password" in line and ATTACKER in line]
    assert len(failures) == 40
    assert any(f"Accepted password for amina.okafor from {ATTACKER}" in line for line in log)

    spray = [json.loads(line) for line in a.windows_jsonl.read_text().splitlines()]
    sprayed = {d["user.name"] for d in spray if d["source.ip"] == "198.51.100.23" and d["event.code"] == "4625"}
    assert len(sprayed) == 25

    names = []
    with a.pcap.open("rb") as fh:
        for _, frame in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(frame).data
            if isinstance(ip.data, dpkt.udp.UDP) and ip.data.dport == 53:
                names.extend(q.name for q in dpkt.dns.DNS(ip.data.data).qd)
    tunnel = [n for n in names if n.endswith("exfil-cdn.example")]
    assert len(tunnel) == 120
    assert min(entropy(n.split(".")[0]) for n in tunnel) > 4.0
