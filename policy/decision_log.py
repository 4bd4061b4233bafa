"""Decisions to the store as ECS events, off the request path, none lost.

``submit`` appends to a deque (no lock, no I/O, no formatting); a background thread turns
batches into ECS documents and writes them. When the store refuses or is unreachable, the
batch is appended to a local JSONL spill file (flushed and fsynced); the thread retries
the spill file before new batches, oldest first, and truncates it only once the store has
taken every line. ``event.id`` is the decision id, so a batch replayed twice is stored once.

Fields: ``event.dataset: policy.decision``; ``event.category: [network]`` with
``event.type: [access, allowed|denied]`` (the ECS-allowed pairing); ``event.action``
``allow``/``deny``/``would_deny``; the caller in ``user.name`` (with ``user.roles``,
``group.name``, ``orchestrator.namespace``, ``source.ip``); the destination in
``service.name``, ``http.request.method``, ``url.path``; the rest under ``ztsoc.policy.*``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from eventstore.store import Doc, Store
from eventstore.timeutil import to_iso
from policy.request import Decision, Request

log = logging.getLogger(__name__)
DATASET = "policy.decision"


def _iso(ts: float) -> str:
    """``to_iso`` for an epoch float without building a datetime (this runs per decision)."""
    ms = int(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def decision_event(req: Request, decision: Decision, ts: float | None = None) -> Doc:
    stamp = to_iso(req.time) if req.time is not None else _iso(ts if ts is not None else time.time())
    doc: Doc = {
        "@timestamp": stamp,
        "event.id": decision.decision_id,
        "event.kind": "event",
        "event.category": ["network"],
        "event.type": ["access", "allowed" if decision.allow else "denied"],
        "event.action": decision.action,
        "event.outcome": "success" if decision.allow else "failure",
        "event.dataset": DATASET,
        "event.module": "policy",
        "event.reason": decision.reason[:1024],
        "service.name": req.service,
        "http.request.method": req.method,
        "url.path": req.path,
        "ztsoc.policy.decision_id": decision.decision_id,
        "ztsoc.policy.rule": list(decision.rules + decision.dry_run_rules),
        "ztsoc.policy.policy": list(decision.policies),
        "ztsoc.policy.reason": list(decision.reasons),
        "ztsoc.policy.dry_run": bool(decision.dry_run_rules),
        "ztsoc.policy.would_deny": decision.action == "would_deny",
        "ztsoc.policy.version": decision.policy_version,
        "ztsoc.policy.authenticated": req.authenticated,
    }
    if req.principal:
        doc["user.name"] = req.principal
        doc["related.user"] = [req.principal]
    if req.namespace:
        doc["orchestrator.namespace"] = req.namespace
    if req.source_ip:
        doc["source.ip"] = req.source_ip
        doc["related.ip"] = [req.source_ip]
    if req.issuer:
        doc["ztsoc.policy.issuer"] = req.issuer
    if req.roles:
        doc["user.roles"] = sorted(req.roles)
    if req.groups:
        doc["group.name"] = sorted(req.groups)
    if req.scopes:
        doc["ztsoc.policy.scopes"] = sorted(req.scopes)
    if req.risk is not None:
        doc["ztsoc.policy.risk"] = float(req.risk.open_alerts)
        if req.risk.max_level:
            doc["ztsoc.policy.risk_level"] = req.risk.max_level
    return doc


def request_from_event(doc: Doc) -> Request:
    """The request a logged decision was about, as far as the log recorded it (for what-if)."""
    from eventstore.timeutil import from_iso
    from policy.language import LEVEL_RANK
    from policy.request import Risk

    def strings(name: str) -> frozenset[str]:
        v = doc.get(name) or ()
        return frozenset([v] if isinstance(v, str) else map(str, v))

    risk = None
    if "ztsoc.policy.risk" in doc:
        lvl = doc.get("ztsoc.policy.risk_level")
        risk = Risk(int(doc["ztsoc.policy.risk"]), lvl, LEVEL_RANK.get(str(lvl), 0) if lvl else 0)
    return Request(
        service=str(doc.get("service.name") or ""), method=str(doc.get("http.request.method") or ""),
        path=str(doc.get("url.path") or ""), principal=doc.get("user.name"),
        namespace=doc.get("orchestrator.namespace"), source_ip=doc.get("source.ip"),
        roles=strings("user.roles"), scopes=strings("ztsoc.policy.scopes"), groups=strings("group.name"),
        issuer=doc.get("ztsoc.policy.issuer"), time=from_iso(str(doc["@timestamp"])), risk=risk,
        authenticated=bool(doc.get("ztsoc.policy.authenticated", bool(doc.get("user.name")))),
    )


@dataclass
class LogStats:
    submitted: int = 0
    written: int = 0
    spilled: int = 0
    replayed: int = 0
    refused: int = 0
    last_error: str | None = None


@dataclass
class DecisionLog:
    """Batched, spill-to-disk decision writer. Use as a ``DecisionSink`` for the engine."""

    store_factory: Callable[[], Store]
    spill_path: Path
    batch_size: int = 1000
    flush_interval_s: float = 0.5
    retry_interval_s: float = 5.0
    #: Queued decisions beyond this go straight to the spill file (memory stays bounded).
    max_pending: int = 200_000
    #: Close the store on ``close()``; false when the caller shares its store with the log.
    own_store: bool = True
    stats: LogStats = field(default_factory=LogStats)
    _queue: deque[tuple[Request, Decision, float]] = field(default_factory=deque, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _io_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _next_retry: float = 0.0

    # -- request path ----------------------------------------------------------------------
    def submit(self, request: Request, decision: Decision) -> None:
        self._queue.append((request, decision, time.time()))
        self.stats.submitted += 1
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    # -- background ------------------------------------------------------------------------
    def start(self) -> DecisionLog:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ztsoc-decision-log", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.flush()
        self.flush()

    def close(self) -> None:
        """Stop the thread after a last flush; what the store does not take stays spilled."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        else:
            self.flush()
        if self._store is not None and self.own_store:
            with contextlib.suppress(Exception):
                self._store.close()
        self._store = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def spilled_lines(self) -> int:
        try:
            with open(self.spill_path, "rb") as fh:
                return sum(1 for _ in fh)
        except FileNotFoundError:
            return 0

    def flush(self) -> None:
        """Write what is queued (replaying the spill file first when the store is back)."""
        with self._io_lock:
            if self._spill_pending() and time.monotonic() >= self._next_retry:
                self._replay()
            while self._queue:
                batch: list[Doc] = []
                while self._queue and len(batch) < self.batch_size:
                    req, dec, ts = self._queue.popleft()
                    batch.append(decision_event(req, dec, ts))
                if self._spill_pending():
                    self._spill(batch)  # keep order: the store is still behind
                elif len(self._queue) > self.max_pending:
                    self._spill(batch)  # the store is slower than the traffic: spill now, replay later
                    self._next_retry = time.monotonic() + self.retry_interval_s
                elif not self._write(batch):
                    self._spill(batch)

    def _spill_pending(self) -> bool:
        try:
            return self.spill_path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _get_store(self) -> Store:
        if self._store is None:
            self._store = self.store_factory()
        return self._store

    def _write(self, docs: list[Doc]) -> bool:
        try:
            result = self._get_store().write_events(docs)
        except Exception as exc:  # store down, network, anything: spill and retry later
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("decision log: store unavailable, spilling %d decisions: %s", len(docs), exc)
            self._next_retry = time.monotonic() + self.retry_interval_s
            if self._store is not None and self.own_store:
                with contextlib.suppress(Exception):
                    self._store.close()
                self._store = None
            return False
        if result.errors:
            refused = {str(k) for k, _ in result.errors}
            self.stats.refused += len(refused)
            bad = [d for i, d in enumerate(docs) if str(d.get("event.id")) in refused or str(i) in refused]
            self._spill(bad, suffix=".refused")  # kept for a human; never retried in a loop
            log.warning("decision log: store refused %d decisions: %s", len(refused), result.errors[:3])
        self.stats.written += result.written
        return True

    def _spill(self, docs: Iterable[Doc], suffix: str = "") -> None:
        path = self.spill_path.with_name(self.spill_path.name + suffix) if suffix else self.spill_path
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with open(path, "a", encoding="utf-8") as fh:
            for d in docs:
                fh.write(json.dumps(d, ensure_ascii=False, default=str) + "\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        if not suffix:
            self.stats.spilled += n

    def _replay(self) -> None:
        try:
            with open(self.spill_path, encoding="utf-8") as fh:
                lines = fh.readlines()
        except FileNotFoundError:
            return
        docs: list[Doc] = []
        for i, line in enumerate(lines, 1):
            try:
                docs.append(json.loads(line))
            except ValueError:
                # A torn last line from a crash mid-write: keep it for a human, replay the rest.
                self._spill([{"line": i, "text": line}], suffix=".refused")
        for start in range(0, len(docs), self.batch_size):
            if not self._write(docs[start:start + self.batch_size]):
                # Keep what was not written (earlier batches are stored; ids make a rerun harmless).
                rest = docs[start:]
                tmp = self.spill_path.with_suffix(".tmp")
                tmp.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in rest), encoding="utf-8")
                os.replace(tmp, self.spill_path)
                self.stats.replayed += start
                return
        self.stats.replayed += len(docs)
        self.spill_path.unlink(missing_ok=True)
        log.info("decision log: replayed %d spilled decisions", len(docs))
