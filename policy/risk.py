"""The risk of a request's source, read from the alert store without the request waiting on it.

A background thread aggregates every unresolved alert by entity value and level (one
query, whatever the number of callers) every ``ttl_s`` seconds; a decision reads the
latest snapshot from a dict. An entity absent from a fresh, complete snapshot has no open
alerts. When the snapshot is older than ``max_age_s`` (the store is down or slow), or the
aggregation came back with ``limit`` groups (it may have left entities out: anyone flooding
alerts on other entities would push a compromised one out and give it a clean record), the
risk is unknown, rules that depend on it fail closed, and ``/readyz`` says why. The unresolved-alert query is the one
``detections.risk`` scores entities with, so analysts and the PDP agree on "open".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from eventstore.store import Store
from policy.language import LEVEL_RANK
from policy.request import Risk

_NO_RISK = Risk()


def _combine(parts: list[Risk]) -> Risk:
    if not parts:
        return _NO_RISK
    if len(parts) == 1:
        return parts[0]
    top = max(parts, key=lambda r: r.max_rank)
    return Risk(sum(p.open_alerts for p in parts), top.max_level, top.max_rank)


@dataclass
class StaticRisk:
    """Risk from a fixed table (tests, ``soc policy decide --risk``, replays)."""

    table: Mapping[str, Risk] = field(default_factory=dict)

    def risk(self, principal: str | None, ip: str | None) -> Risk | None:
        return _combine([self.table[k] for k in (principal, ip) if k and k in self.table])


@dataclass
class StoreRisk:
    """Snapshot of unresolved alerts per entity, refreshed off the request path."""

    store_factory: Callable[[], Store]
    ttl_s: float = 5.0
    max_age_s: float = 30.0
    limit: int = 100_000
    last_error: str | None = None
    _snapshot: dict[str, Risk] = field(default_factory=dict)
    _taken_at: float = 0.0
    #: The last aggregation reached ``limit`` groups: entities may be missing, so no one is "clean".
    truncated: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _store: Store | None = None

    def refresh(self) -> None:
        """One aggregation; on failure the old snapshot ages out instead of being replaced."""
        from detections.risk import UNRESOLVED

        try:
            if self._store is None:
                self._store = self.store_factory()
            rows = self._store.aggregate(
                ["ztsoc.alert.entity.value", "ztsoc.alert.level"], query=UNRESOLVED, index="alerts", limit=self.limit,
            )
        except Exception as exc:  # any store failure: keep serving, let the snapshot age
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        snap: dict[str, Risk] = {}
        for row in rows:
            entity = row.get("ztsoc.alert.entity.value")
            if not entity:
                continue
            level = str(row.get("ztsoc.alert.level") or "low")
            rank = LEVEL_RANK.get(level, LEVEL_RANK["low"])
            prev = snap.get(str(entity), _NO_RISK)
            count = prev.open_alerts + int(row.get("count", 0))
            snap[str(entity)] = Risk(count, level, rank) if rank > prev.max_rank else Risk(count, prev.max_level, prev.max_rank)
        self._snapshot = snap
        self._taken_at = time.monotonic()
        self.truncated = len(rows) >= self.limit
        self.last_error = (f"risk snapshot incomplete: {len(rows)} alert groups reached the limit of {self.limit}"
                           if self.truncated else None)

    def fresh(self) -> bool:
        """A snapshot to decide on: recent, and complete (not cut at ``limit``)."""
        return self._taken_at > 0 and not self.truncated and time.monotonic() - self._taken_at <= self.max_age_s

    def readiness(self) -> tuple[bool, str]:
        """``/readyz``: ready only when risk-based rules are not failing closed, else why not."""
        if self.truncated:
            return False, self.last_error or "risk snapshot incomplete"
        if not self.fresh():
            return False, f"risk snapshot not fresh: {self.last_error or 'first refresh pending'}"
        return True, "policy loaded, risk fresh"

    def risk(self, principal: str | None, ip: str | None) -> Risk | None:
        if not self.fresh():
            return None
        snap = self._snapshot
        return _combine([snap[k] for k in (principal, ip) if k and k in snap])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.ttl_s)

    def start(self) -> StoreRisk:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ztsoc-policy-risk", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
