"""A working day of the province's network, written as the sensors would write it.

The day is the 24 hours before ``end``: staff on workstations use the citizen portal,
records, payments and identity services over TLS, resolve names, admins log in to
servers over SSH and use sudo, Windows file servers record logons. Activity follows
office hours. Optional incidents (``playbooks.incidents``, a registry) are mixed into the same
files, so detections see them exactly as they would see real ones.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playbooks.generators.packets import Capture, client_hello
from playbooks.generators.service_calls import ServiceCall, spiffe

RESOLVER = "10.0.0.53"
SERVICES = {  # name -> (ip, port, server name)
    "citizen-portal": ("10.10.1.10", 443, "portal.gov.example"),
    "records": ("10.10.2.20", 443, "records.gov.example"),
    "payments": ("10.10.3.30", 443, "payments.gov.example"),
    "identity": ("10.10.4.40", 443, "idp.gov.example"),
    "intranet": ("10.10.5.50", 80, "intranet.gov.example"),
}
SERVERS = {"web-01": "10.10.1.10", "records-db": "10.10.2.21", "pay-01": "10.10.3.30", "idp-01": "10.10.4.40",
           "jump-01": "10.10.9.9"}
ADMINS = ["amina.okafor", "li.wei", "jorge.silva"]
STAFF = [f"{first}.{last}" for first in ("ana", "ben", "chen", "dara", "eli", "fatima", "goran", "hana", "ivan", "june")
         for last in ("ng", "roy", "diaz", "kim")]
ATTACKER = "203.0.113.77"
SCANNER = "10.20.7.66"


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A policy file someone added: recorded as an event, and in force for calls after ``ts``."""

    ts: float
    actor: str
    file: str
    rule: str
    text: str

    def event(self) -> dict[str, object]:
        when = datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {"@timestamp": when, "event.id": f"policy-change-{int(self.ts)}-{self.file}", "event.kind": "event",
                "event.category": ["configuration"], "event.type": ["change"], "event.action": "policy-file-added",
                "event.outcome": "success", "event.dataset": "policy.change", "user.name": self.actor,
                "file.name": self.file, "ztsoc.policy.rule": [self.rule], "ztsoc.policy.policy": self.file,
                "message": f"{self.actor} added {self.file} (rule {self.rule})"}


@dataclass
class Artefacts:
    """What a day left behind: one file per sensor, plus the ground truth of injected incidents."""

    directory: Path
    pcap: Path
    auth_log: Path
    windows_jsonl: Path
    calls_jsonl: Path
    calls: list[ServiceCall] = field(default_factory=list)
    policy_changes: list[PolicyChange] = field(default_factory=list)
    packets: int = 0
    auth_lines: int = 0
    windows_events: int = 0
    incidents: list[str] = field(default_factory=list)


@dataclass
class Day:
    start: datetime
    end: datetime
    rng: random.Random
    capture: Capture = field(default_factory=Capture)
    auth: list[tuple[float, str]] = field(default_factory=list)
    windows: list[dict[str, object]] = field(default_factory=list)
    calls: list[ServiceCall] = field(default_factory=list)
    policy_changes: list[PolicyChange] = field(default_factory=list)

    def office_time(self) -> float:
        """A moment of the day, weighted towards office hours (08:00-18:00 local = UTC here)."""
        while True:
            t = self.start + timedelta(seconds=self.rng.uniform(0, (self.end - self.start).total_seconds()))
            weight = 1.0 if 8 <= t.hour < 18 else 0.08
            if self.rng.random() < weight:
                return t.timestamp()

    def syslog(self, ts: float, host: str, program: str, pid: int, text: str) -> None:
        stamp = datetime.fromtimestamp(ts, UTC).strftime("%b %e %H:%M:%S")
        self.auth.append((ts, f"{stamp} {host} {program}[{pid}]: {text}"))

    def winlog(self, ts: float, code: int, user: str, ip: str, outcome: str, logon_type: int = 3,
               computer: str = "fs-01.gov.example") -> None:
        when = datetime.fromtimestamp(ts, UTC)
        record = len(self.windows) + 1
        self.windows.append({
            "@timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event.id": f"fs-01-security-{record}",
            "event.kind": "event", "event.category": ["authentication"], "event.type": ["start"],
            "event.action": "logged-in" if code == 4624 else "logon-failed", "event.outcome": outcome,
            "event.code": str(code), "event.dataset": "windows.security", "event.provider": "Microsoft-Windows-Security-Auditing",
            "host.name": computer, "user.name": user, "user.domain": "PROVINCE", "source.ip": ip,
            "winlog.channel": "Security", "winlog.event_id": str(code), "winlog.record_id": str(record),
            "winlog.computer_name": computer, "winlog.provider_name": "Microsoft-Windows-Security-Auditing",
            "winlog.logon.type": str(logon_type),
            "winlog.event_data.TargetUserName": user, "winlog.event_data.IpAddress": ip,
            "winlog.event_data.LogonType": str(logon_type),
            "winlog.event_data.Status": "0x0" if code == 4624 else "0xc000006d",
        })


def _workstation(rng: random.Random) -> str:
    return f"10.20.{rng.randint(1, 6)}.{rng.randint(10, 250)}"


def _normal_traffic(day: Day, flows: int) -> None:
    rng = day.rng
    for _ in range(flows):
        ts = day.office_time()
        client = _workstation(rng)
        service = rng.choices(list(SERVICES), weights=[5, 3, 2, 2, 2])[0]
        ip, port, name = SERVICES[service]
        if rng.random() < 0.6:
            day.capture.dns_lookup(ts, client, RESOLVER, name, [ip], rng)
            ts += 0.002
        sport = rng.randint(32768, 60999)
        if port == 443:
            day.capture.tcp_session(ts, client, ip, sport, port, request=client_hello(name, rng),
                                    response_size=rng.randint(1_500, 16_000), rng=rng)
        else:
            path = rng.choice(["/", "/news", "/forms/leave", "/directory", "/docs/policy.pdf"])
            request = (f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
                       "\r\nAccept: */*\r\n\r\n").encode()
            day.capture.tcp_session(ts, client, ip, sport, port, request=request,
                                    response_size=rng.randint(500, 20_000), rng=rng)
    for _ in range(flows // 20):  # a closed port now and then
        ts = day.office_time()
        day.capture.tcp_rejected(ts, _workstation(rng), rng.choice(list(SERVERS.values())),
                                 rng.randint(32768, 60999), rng.choice([8080, 3389, 5900]), rng)
    for _ in range(flows // 3):  # other lookups
        ts = day.office_time()
        domain = rng.choice(["updates.vendor.example", "mail.gov.example", "time.gov.example", "maps.example.org"])
        day.capture.dns_lookup(ts, _workstation(rng), RESOLVER, domain, [f"198.51.100.{rng.randint(1, 254)}"], rng)


def _normal_logins(day: Day, logins: int) -> None:
    rng = day.rng
    for _ in range(logins):
        ts = day.office_time()
        admin = rng.choice(ADMINS)
        host, src = rng.choice(list(SERVERS)), f"10.20.9.{10 + ADMINS.index(admin)}"
        pid, port = rng.randint(1000, 60000), rng.randint(40000, 60000)
        if rng.random() < 0.1:  # a mistyped password first
            day.syslog(ts - 5, host, "sshd", pid - 1, f"Failed password for {admin} from {src} port {port - 1} ssh2")
        day.syslog(ts, host, "sshd", pid, f"Accepted publickey for {admin} from {src} port {port} ssh2: "
                   f"ED25519 SHA256:{''.join(rng.choices(string.ascii_letters + string.digits, k=43))}")
        day.syslog(ts, host, "sshd", pid, f"pam_unix(sshd:session): session opened for user {admin}(uid=1001) by (uid=0)")
        if rng.random() < 0.5:
            day.syslog(ts + 30, host, "sudo", pid + 7, f"{admin} : TTY=pts/0 ; PWD=/home/{admin} ; USER=root ; "
                       "COMMAND=/usr/bin/systemctl restart nginx")
        day.syslog(ts + 600, host, "sshd", pid, f"pam_unix(sshd:session): session closed for user {admin}")
    for _ in range(logins * 2):
        ts = day.office_time()
        user = rng.choice(STAFF)
        if rng.random() < 0.05:
            day.winlog(ts - 3, 4625, user, _workstation(rng), "failure")
        day.winlog(ts, 4624, user, _workstation(rng), "success")


PORTAL = spiffe("portal", "citizen-portal")
PORTAL_IP = SERVICES["citizen-portal"][0]
RECONCILER = spiffe("finance", "reconciler")


def _normal_service_calls(day: Day, calls: int) -> None:
    """The portal reads records and charges fees; finance reads the ledger; clerks work records."""
    rng = day.rng
    for _ in range(calls):
        ts = day.office_time()
        kind = rng.random()
        if kind < 0.45:
            day.calls.append(ServiceCall(ts, PORTAL, PORTAL_IP, "records", "GET",
                                         f"/records/citizens/{rng.randint(1000, 9999)}/certificates/birth",
                                         scopes=("records:read",)))
        elif kind < 0.65:
            day.calls.append(ServiceCall(ts, PORTAL, PORTAL_IP, "payments", "POST", "/payments/charges",
                                         scopes=("payments:write",)))
        elif kind < 0.8:
            day.calls.append(ServiceCall(ts, RECONCILER, "10.10.3.31", "payments", "GET",
                                         f"/ledger/{rng.choice(['daily', 'weekly'])}"))
        elif kind < 0.95:
            clerk = rng.choice(STAFF[:8])
            day.calls.append(ServiceCall(ts, clerk, _workstation(rng), "records", rng.choice(["GET", "PATCH"]),
                                         f"/records/land/{rng.randint(100, 999)}", roles=("clerk",),
                                         groups=("records-office",)))
        else:  # the odd mistake: the portal asks for something it may not
            day.calls.append(ServiceCall(ts, PORTAL, PORTAL_IP, "records", "DELETE",
                                         f"/records/citizens/{rng.randint(1000, 9999)}", scopes=("records:read",)))


#: The incidents the demo mixes into its day (generators in ``playbooks.incidents``).
DEMO_INCIDENTS: tuple[str, ...] = ("ssh-brute-force", "port-scan", "dns-tunnel", "password-spray", "token-replay")


def generate(directory: Path, *, seed: int = 7, end: datetime | None = None, flows: int = 2500,
             logins: int = 120, service_calls: int = 400,
             incidents: Sequence[str | tuple[str, Mapping[str, Any]]] = ()) -> Artefacts:
    """Write ``network.pcap``, ``auth.log``, ``windows.jsonl`` and ``calls.jsonl`` for the 24 hours before ``end``.

    The service calls are not events yet: ``service_calls.send_calls`` puts them through the
    policy engine, whose decision log writes the events.
    """
    end = (end or datetime.now(UTC)).replace(microsecond=0)
    day = Day(start=end - timedelta(hours=24), end=end, rng=random.Random(seed))
    _normal_traffic(day, flows)
    _normal_logins(day, logins)
    _normal_service_calls(day, service_calls)
    from playbooks.incidents import INCIDENT_GENERATORS

    names = []
    for item in incidents:
        name, params = (item, {}) if isinstance(item, str) else item
        INCIDENT_GENERATORS[name](day, params)
        names.append(name)
    directory.mkdir(parents=True, exist_ok=True)
    out = Artefacts(directory, directory / "network.pcap", directory / "auth.log", directory / "windows.jsonl",
                    directory / "calls.jsonl", incidents=names)
    out.packets = day.capture.write(out.pcap)
    day.auth.sort(key=lambda line: line[0])
    out.auth_log.write_text("".join(text + "\n" for _, text in day.auth))
    out.auth_lines = len(day.auth)
    day.windows.sort(key=lambda d: str(d["@timestamp"]))
    changes = sorted(day.policy_changes, key=lambda c: c.ts)
    out.policy_changes = changes
    out.windows_jsonl.write_text("".join(json.dumps(d) + "\n" for d in [*day.windows, *(c.event() for c in changes)]))
    out.windows_events = len(day.windows)
    out.calls = sorted(day.calls, key=lambda c: c.ts)
    out.calls_jsonl.write_text("".join(json.dumps(asdict(c)) + "\n" for c in out.calls))
    return out

