"""Incident generators: each writes one attack into a generated day, with its parameters.

A generator adds to a ``workday.Day``: packets to the capture, syslog lines, Windows
logon events, service calls (later decided by the policy engine) and policy changes, so
the incident reaches the SOC through the real collectors and the real PDP. Parameters
come from the exercise file; each has a default, so the demo can use them bare.
``INCIDENT_GENERATORS`` is the registry an exercise's ``incident.generator`` names.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any

from playbooks.generators.service_calls import ServiceCall, spiffe
from playbooks.generators.workday import ATTACKER, SCANNER, SERVERS, SERVICES, STAFF, Day, PolicyChange

Params = Mapping[str, Any]


def _at(day: Day, fraction: float) -> float:
    return day.start.timestamp() + fraction * (day.end - day.start).total_seconds()


def ssh_brute_force(day: Day, p: Params) -> None:
    """Failed passwords from one source, a success on a real account, then sudo."""
    attacker, host, victim = p.get("attacker", ATTACKER), p.get("host", "jump-01"), p.get("user", "amina.okafor")
    attempts, ts = int(p.get("attempts", 40)), _at(day, float(p.get("at", 0.9)))
    for i in range(attempts):
        user = day.rng.choice(["root", "admin", "oracle", victim])
        verb = "Failed password for invalid user" if user in ("admin", "oracle") else "Failed password for"
        day.syslog(ts + i * 1.5, host, "sshd", 30000 + i, f"{verb} {user} from {attacker} port {50000 + i} ssh2")
    day.syslog(ts + attempts * 1.5 + 5, host, "sshd", 30100,
               f"Accepted password for {victim} from {attacker} port 50100 ssh2")
    command = p.get("command", "/bin/cat /etc/shadow")
    day.syslog(ts + attempts * 1.5 + 30, host, "sudo", 30101,
               f"{victim} : TTY=pts/1 ; PWD=/home/{victim} ; USER=root ; COMMAND={command}")


def port_scan(day: Day, p: Params) -> None:
    """A SYN scan of the low ports; the open ones are then probed for their service."""
    scanner, target = p.get("scanner", SCANNER), p.get("target", SERVERS["records-db"])
    open_ports = set(p.get("open_ports", [22, 443, 5432]))
    ts = _at(day, float(p.get("at", 0.8)))
    for i, port in enumerate(range(1, int(p.get("last_port", 1024)) + 1)):
        if port in open_ports:
            day.capture.tcp_session(ts + i * 0.002, scanner, target, 45000 + i, port, rng=day.rng)
        else:
            day.capture.tcp_rejected(ts + i * 0.002, scanner, target, 45000 + i, port, day.rng)
    if p.get("discovery", False):  # then talk to each open port like a service-discovery script
        ts += 120
        for j, port in enumerate(sorted(open_ports)):
            request = (f"GET / HTTP/1.1\r\nHost: {target}\r\nUser-Agent: Mozilla/5.0 (compatible; Nmap Scripting "
                       "Engine; https://nmap.org/book/nse.html)\r\n\r\n").encode()
            day.capture.tcp_session(ts + j * 3, scanner, target, 47000 + j, port, request=request,
                                    response_size=600, rng=day.rng)


def dns_tunnel(day: Day, p: Params) -> None:
    host, domain = p.get("host", "10.20.3.44"), p.get("domain", "t.exfil-cdn.example")
    ts, alphabet = _at(day, float(p.get("at", 0.7))), string.ascii_lowercase + string.digits
    for i in range(int(p.get("queries", 120))):
        label = "".join(day.rng.choices(alphabet, k=52))
        day.capture.dns_lookup(ts + i * 2, host, "10.0.0.53", f"{label}.{domain}", ["192.0.2.1"], day.rng)


def password_spray(day: Day, p: Params) -> None:
    """One password tried against many portal accounts from one address."""
    source, computer = p.get("source", "198.51.100.23"), p.get("computer", "portal-win-01.gov.example")
    ts = _at(day, float(p.get("at", 0.6)))
    for i, user in enumerate(STAFF[: int(p.get("accounts", 25))]):
        day.winlog(ts + i * 4, 4625, user, source, "failure", logon_type=3, computer=computer)


def token_replay(day: Day, p: Params) -> None:
    """The portal's token, stolen, replayed from a workstation against records it never reads."""
    principal, source = p.get("principal", spiffe("portal", "citizen-portal")), p.get("source", "10.20.6.99")
    ts = _at(day, float(p.get("at", 0.85)))
    for i in range(int(p.get("calls", 30))):
        path = f"/records/export/citizens?page={i}" if i % 3 else f"/records/citizens/{2000 + i}/certificates/birth"
        day.calls.append(ServiceCall(ts + i * 20, principal, source, "records", "GET", path, scopes=("records:read",)))


def lateral_movement(day: Day, p: Params) -> None:
    """A compromised workload tries services it never talks to, hunting for a way in."""
    principal = p.get("principal", spiffe("finance", "reconciler"))
    source = p.get("source", "10.10.3.31")
    ts = _at(day, float(p.get("at", 0.75)))
    targets = [("records", "GET", "/records/citizens/1001"), ("idp", "GET", "/admin/users"),
               ("admin-console", "GET", "/"), ("records", "GET", "/records/export/all"),
               ("idp", "POST", "/admin/users/amina.okafor/reset"), ("payments", "POST", "/payments/refunds")]
    for round_ in range(int(p.get("rounds", 4))):
        for i, (service, method, path) in enumerate(targets):
            day.calls.append(ServiceCall(ts + round_ * 60 + i * 5, principal, source, service, method, path))


def insider_exfil(day: Day, p: Params) -> None:
    """Large uploads at night from one workstation to an outside address."""
    host, dest = p.get("host", "10.20.4.77"), p.get("destination", "198.51.100.200")
    night = day.end.replace(hour=int(p.get("hour", 2)), minute=0, second=0)
    if night >= day.end:
        night = night.replace(day=night.day) - (day.end - day.start)
    ts = night.timestamp()
    for i in range(int(p.get("uploads", 12))):
        size = int(p.get("megabytes_each", 40)) * 1_000_000
        day.capture.tcp_session(ts + i * 90, host, dest, 51000 + i, 443, request=b"\x16" * 1200,
                                response_size=0, rng=day.rng)
        _upload(day, ts + i * 90 + 0.01, host, dest, 52000 + i, size)


def _upload(day: Day, ts: float, client: str, server: str, sport: int, size: int) -> None:
    """A bulk upload: big segments one way (what the flow meter counts as source bytes)."""
    from playbooks.generators.packets import bulk_upload

    bulk_upload(day.capture, ts, client, server, sport, 443, size, day.rng)


def malicious_policy_change(day: Day, p: Params) -> None:
    """Someone adds an allow rule that opens refunds to a workload; the workload uses it at once."""
    actor, principal = p.get("actor", "jorge.silva"), p.get("principal", spiffe("portal", "citizen-portal"))
    rule = p.get("rule", "temporary-refund-access")
    ts = _at(day, float(p.get("at", 0.88)))
    day.policy_changes.append(PolicyChange(ts, actor, "payments-hotfix.yaml", rule, (
        "apiVersion: ztsoc/v1\nkind: Policy\nname: payments-hotfix\n"
        "description: Hotfix for the refund backlog.\nrules:\n"
        f"  - name: {rule}\n    effect: allow\n    source:\n      principals: [\"{principal}\"]\n"
        "    destination:\n      services: [payments]\n      methods: [POST]\n      paths: [\"/payments/refunds\"]\n")))
    portal_ip = SERVICES["citizen-portal"][0]
    for i in range(int(p.get("refunds", 15))):
        # before the change these are refused; after it, allowed
        day.calls.append(ServiceCall(ts + (i - 3) * 45, principal, portal_ip, "payments", "POST", "/payments/refunds",
                                     scopes=("payments:write",)))


INCIDENT_GENERATORS: dict[str, Callable[[Day, Params], None]] = {
    "ssh-brute-force": ssh_brute_force,
    "port-scan": port_scan,
    "dns-tunnel": dns_tunnel,
    "password-spray": password_spray,
    "token-replay": token_replay,
    "lateral-movement": lateral_movement,
    "insider-exfil": insider_exfil,
    "malicious-policy-change": malicious_policy_change,
}
