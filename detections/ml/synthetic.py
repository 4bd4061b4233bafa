"""Generated baselines of normal activity with labelled, injected anomalies.

The tests and ``bench/anomaly.py`` need days of ordinary activity for hundreds of users,
hosts and service identities, plus known attacks at known places, to measure what the
detectors find. Events are ECS documents shaped like the collectors' output (sshd/Windows
logons as ``system.auth``, flows as ``network.flow``, DNS as ``network.dns``, decisions as
``policy.decision``, as ``policy/decision_log.py`` writes them) and go into the store
through ``write_events`` like any other.

Each entity has habits: a user logs on during a shift from a workstation or two to a few
servers; a host talks to a handful of destinations on their ports and resolves a handful
of names; a service identity calls a few services on a few paths from its pod addresses.
Ordinary noise is kept in (occasional failed logons, a VPN address, an unseen
destination, a rejected connection), so the detectors must tell attacks from it.

Injected kinds (``ANOMALIES`` registry): brute force, scanning, exfiltration, token
replay from a new source, lateral movement. Each yields the labels (entity kind, entity,
window start) of the entity-windows it touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from eventstore import Doc

FLOW_STATE_FIELD = "ztsoc.flow.state"


def iso(ts: float) -> str:
    sec = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{int((ts - sec) * 1000):03d}Z"


@dataclass(frozen=True, slots=True)
class Label:
    anomaly: str
    kind: str
    entity: str
    start: int  # window start, epoch seconds


@dataclass(slots=True)
class User:
    name: str
    ips: list[str]
    hosts: list[str]
    shift: int  # first hour of the shift (UTC)
    hours: int
    rate: float


@dataclass(slots=True)
class Host:
    ip: str
    dests: list[tuple[str, int]]
    names: list[str]
    rate: float
    log_bytes: float


@dataclass(slots=True)
class Service:
    principal: str
    ips: list[str]
    calls: list[tuple[str, str]]  # (service, path)
    rate: float


@dataclass(slots=True)
class Population:
    users: list[User]
    hosts: list[Host]
    services: list[Service]
    servers: list[str]


@dataclass(slots=True)
class Generator:
    """Writes events in time order, one window at a time; ``labels`` collects injected anomalies."""

    start: datetime
    days: float
    seed: int
    n_users: int = 200
    n_hosts: int = 200
    n_services: int = 100
    window: int = 900
    #: multiplies every entity's event rate (the speed benchmark uses a lighter load)
    intensity: float = 1.0
    labels: list[Label] = field(default_factory=list)
    _n: int = 0
    rng: np.random.Generator = field(init=False)
    pop: Population = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.pop = self._population()

    # -- who is who ---------------------------------------------------------------------------
    def _population(self) -> Population:
        r = self.rng
        servers = [f"srv-{i:03d}" for i in range(max(20, self.n_users // 4))]
        users = []
        for i in range(self.n_users):
            ips = [f"10.1.{i // 250}.{i % 250 + 1}"] + ([f"10.9.{i // 250}.{i % 250 + 1}"] if r.random() < 0.3 else [])
            hosts = list(r.choice(servers, size=int(r.integers(1, 4)), replace=False))
            always = r.random() < 0.1  # service accounts, on call
            users.append(User(f"user{i:04d}", ips, hosts, 0 if always else int(r.integers(6, 11)),
                              24 if always else 9, float(r.uniform(0.4, 2.5))))
        hosts = []
        for i in range(self.n_hosts):
            dests = [(f"10.3.{int(r.integers(0, 4))}.{int(r.integers(1, 255))}",
                      int(r.choice([443, 443, 80, 8443, 22, 389, 445, 5432]))) for _ in range(int(r.integers(3, 11)))]
            names = [f"{w}.{d}.gov.example" for w, d in zip(
                r.choice(["www", "api", "mail", "intranet", "cdn", "auth", "files", "updates"], 6),
                r.choice(["health", "finance", "records", "portal", "payroll", "tax"], 6), strict=True)][
                : int(r.integers(2, 7))]
            hosts.append(Host(f"10.2.{i // 250}.{i % 250 + 1}", dests, names, float(r.uniform(1.0, 6.0)),
                              float(r.uniform(7.0, 11.0))))
        svc_names = [f"svc-{n}" for n in ("records", "payments", "portal", "idp", "tax", "health", "notify",
                                          "audit", "search", "files")]
        services = []
        for i in range(self.n_services):
            k = int(r.integers(1, 4))
            calls = [(str(s), f"/api/v1/{p}") for s in r.choice(svc_names, k, replace=False)
                     for p in r.choice(["items", "status", "lookup", "submit", "report", "batch"],
                                       int(r.integers(1, 4)), replace=False)]
            services.append(Service(f"spiffe://province.example/ns/ns{i % 7}/sa/app{i:03d}",
                                    [f"10.4.{i // 250}.{i % 250 + 1}"] + ([f"10.4.200.{i % 250 + 1}"]
                                                                          if r.random() < 0.5 else []),
                                    calls, float(r.uniform(1.0, 8.0))))
        return Population(users, hosts, services, servers)

    # -- event shapes ----------------------------------------------------------------------------
    def _id(self) -> str:
        self._n += 1
        return f"gen-{self.seed}-{self._n:010d}"

    def auth(self, ts: float, user: str, src: str, host: str, ok: bool) -> Doc:
        return {
            "@timestamp": iso(ts), "event.id": self._id(), "event.kind": "event",
            "event.category": ["authentication"], "event.type": ["start"] if ok else ["info"],
            "event.action": "ssh_login", "event.outcome": "success" if ok else "failure",
            "event.dataset": "system.auth", "user.name": user, "source.ip": src, "host.name": host,
            "related.user": [user], "related.ip": [src],
        }

    def flow(self, ts: float, src: str, dst: str, port: int, nbytes: int, state: str = "SF") -> Doc:
        rb = nbytes // 4 if state == "SF" else 0
        return {
            "@timestamp": iso(ts), "event.id": self._id(), "event.kind": "event", "event.category": ["network"],
            "event.type": ["connection"], "event.dataset": "network.flow", "network.transport": "tcp",
            "source.ip": src, "destination.ip": dst, "destination.port": port,
            "source.bytes": nbytes, "destination.bytes": rb, "network.bytes": nbytes + rb,
            FLOW_STATE_FIELD: state,
        }

    def dns(self, ts: float, src: str, name: str) -> Doc:
        return {
            "@timestamp": iso(ts), "event.id": self._id(), "event.kind": "event", "event.category": ["network"],
            "event.type": ["protocol"], "event.dataset": "network.dns", "network.protocol": "dns",
            "source.ip": src, "destination.ip": "10.0.0.53", "destination.port": 53,
            "dns.question.name": name, "dns.question.type": "A", "dns.response_code": "NOERROR",
        }

    def decision(self, ts: float, principal: str, src: str, service: str, path: str, allow: bool) -> Doc:
        return {
            "@timestamp": iso(ts), "event.id": self._id(), "event.kind": "event", "event.category": ["network"],
            "event.type": ["access", "allowed" if allow else "denied"], "event.action": "allow" if allow else "deny",
            "event.outcome": "success" if allow else "failure", "event.dataset": "policy.decision",
            "event.module": "policy", "user.name": principal, "related.user": [principal], "source.ip": src,
            "service.name": service, "url.path": path, "http.request.method": "GET",
        }

    # -- normal activity ---------------------------------------------------------------------------
    def windows(self) -> Iterator[int]:
        t0 = int(self.start.timestamp()) // self.window * self.window
        for k in range(int(self.days * 86400 / self.window)):
            yield t0 + k * self.window

    def normal(self, w: int) -> list[Doc]:
        r, W, out = self.rng, self.window, []
        hour = (w // 3600) % 24
        day = 8 <= hour < 18
        for u in self.pop.users:
            on = (hour - u.shift) % 24 < u.hours
            if r.random() >= (0.5 if on else 0.004):
                continue
            for _ in range(1 + int(r.poisson(u.rate * self.intensity * 0.5))):
                x = r.random()
                src = u.ips[int(r.integers(len(u.ips)))] if x < 0.995 else f"172.16.{int(r.integers(0, 4))}.{int(r.integers(1, 255))}"
                host = u.hosts[int(r.integers(len(u.hosts)))]
                if r.random() < 0.04:
                    out.append(self.auth(w + r.random() * W, u.name, src, host, False))
                out.append(self.auth(w + r.random() * W, u.name, src, host, True))
        for h in self.pop.hosts:
            if r.random() >= (0.9 if day else 0.4):
                continue
            for _ in range(1 + int(r.poisson(h.rate * self.intensity))):
                if r.random() < 0.99:
                    dst, port = h.dests[int(r.integers(len(h.dests)))]
                else:
                    dst, port = f"203.0.{int(r.integers(0, 255))}.{int(r.integers(1, 255))}", 443
                state = "SF" if r.random() > 0.01 else str(r.choice(["S0", "REJ"]))
                out.append(self.flow(w + r.random() * W, h.ip, dst, port, int(r.lognormal(h.log_bytes, 0.8)), state))
            if r.random() < 0.5 * min(self.intensity, 1.0):
                for _ in range(1 + int(r.poisson(0.5))):
                    out.append(self.dns(w + r.random() * W, h.ip, h.names[int(r.integers(len(h.names)))]))
        for s in self.pop.services:
            if r.random() >= 0.8:
                continue
            for _ in range(1 + int(r.poisson(s.rate * self.intensity))):
                svc, path = s.calls[int(r.integers(len(s.calls)))]
                out.append(self.decision(w + r.random() * W, s.principal, s.ips[int(r.integers(len(s.ips)))],
                                         svc, path, r.random() > 0.01))
        return out

    def events(self, anomalies_from: datetime | None = None, per_kind: int = 0,
               batch: int = 50_000) -> Iterator[list[Doc]]:
        """Batches of events; ``per_kind`` anomalies of each kind injected after ``anomalies_from``."""
        plan: dict[int, list[str]] = {}
        if per_kind and anomalies_from is not None:
            cut = int(anomalies_from.timestamp())
            later = [w for w in self.windows() if w >= cut]
            for name in ANOMALIES:
                for w in self.rng.choice(later, size=per_kind, replace=len(later) < per_kind):
                    plan.setdefault(int(w), []).append(name)
        buf: list[Doc] = []
        for w in self.windows():
            buf.extend(self.normal(w))
            for name in plan.get(w, []):
                buf.extend(ANOMALIES[name](self, w))
            if len(buf) >= batch:
                yield buf
                buf = []
        if buf:
            yield buf

    # -- injected anomalies ------------------------------------------------------------------------
    def _t(self, w: int) -> float:
        return w + self.rng.random() * self.window

    def brute_force(self, w: int) -> list[Doc]:
        r = self.rng
        u = self.pop.users[int(r.integers(len(self.pop.users)))]
        src = f"198.51.100.{int(r.integers(1, 255))}"
        host = u.hosts[0]
        out = [self.auth(self._t(w), u.name, src, host, False) for _ in range(int(r.integers(15, 120)))]
        if r.random() < 0.5:
            out.append(self.auth(w + self.window - 1, u.name, src, host, True))
        self.labels.append(Label("brute_force", "user", u.name, w))
        return out

    def scanning(self, w: int) -> list[Doc]:
        r = self.rng
        h = self.pop.hosts[int(r.integers(len(self.pop.hosts)))]
        out = []
        if r.random() < 0.5:  # vertical: many ports on a few targets
            targets = [f"10.3.{int(r.integers(0, 4))}.{int(r.integers(1, 255))}" for _ in range(int(r.integers(1, 4)))]
            for port in r.choice(np.arange(1, 10000), int(r.integers(40, 400)), replace=False):
                out.append(self.flow(self._t(w), h.ip, str(r.choice(targets)), int(port), 60,
                                     "REJ" if r.random() < 0.7 else "S0"))
        else:  # horizontal: one port across a subnet
            port = int(r.choice([22, 445, 3389, 5985]))
            for k in r.choice(np.arange(1, 255), int(r.integers(30, 200)), replace=False):
                out.append(self.flow(self._t(w), h.ip, f"10.5.{int(r.integers(0, 4))}.{int(k)}", port, 60,
                                     "S0" if r.random() < 0.8 else "REJ"))
        self.labels.append(Label("scanning", "host", h.ip, w))
        return out

    def exfiltration(self, w: int) -> list[Doc]:
        r = self.rng
        h = self.pop.hosts[int(r.integers(len(self.pop.hosts)))]
        dst = f"192.0.2.{int(r.integers(1, 255))}"
        total = float(np.exp(h.log_bytes) * r.uniform(300, 3000))
        n = int(r.integers(1, 6))
        out = [self.flow(self._t(w), h.ip, dst, 443, int(total / n)) for _ in range(n)]
        self.labels.append(Label("exfiltration", "host", h.ip, w))
        return out

    def token_replay(self, w: int) -> list[Doc]:
        r = self.rng
        s = self.pop.services[int(r.integers(len(self.pop.services)))]
        src = f"10.{int(r.integers(6, 8))}.{int(r.integers(0, 255))}.{int(r.integers(1, 255))}"
        out = []
        for _ in range(int(r.integers(2, 12))):
            svc, path = s.calls[int(r.integers(len(s.calls)))]
            out.append(self.decision(self._t(w), s.principal, src, svc, path, True))
        self.labels.append(Label("token_replay", "service", s.principal, w))
        return out

    def lateral_movement(self, w: int) -> list[Doc]:
        r = self.rng
        u = self.pop.users[int(r.integers(len(self.pop.users)))]
        h = self.pop.hosts[int(r.integers(len(self.pop.hosts)))]  # the compromised machine
        src = h.ip
        fresh = [s for s in self.pop.servers if s not in u.hosts]
        targets = list(r.choice(fresh, int(r.integers(3, 9)), replace=False))
        out = [self.auth(self._t(w), u.name, src, str(t), True) for t in targets]
        # the same hop seen on the wire: the workstation reaching servers it never talks to
        for t in targets:
            idx = self.pop.servers.index(str(t))
            out.append(self.flow(self._t(w), src, f"10.6.{idx // 250}.{idx % 250 + 1}",
                                 int(r.choice([445, 3389, 22, 5985])), 4000))
        self.labels.append(Label("lateral_movement", "user", u.name, w))
        self.labels.append(Label("lateral_movement", "host", src, w))
        return out


ANOMALIES: dict[str, Callable[[Generator, int], list[Doc]]] = {
    "brute_force": Generator.brute_force,
    "scanning": Generator.scanning,
    "exfiltration": Generator.exfiltration,
    "token_replay": Generator.token_replay,
    "lateral_movement": Generator.lateral_movement,
}
