"""Decisions to the store as ECS events, off the request path, none lost.

``submit`` appends to a deque (no lock, no I/O, no formatting); a background thread turns
batches into ECS documents and writes them. When the store refuses or is unreachable, the
batch is appended to a local JSONL spill file (flushed and fsynced); the thread retries
the spill file before new batches, oldest first, and truncates it only once the store has
taken every line. ``event.id`` is the decision id, so a batch replayed twice is stored once.
``ProcessDecisionLog`` (what ``soc policy serve`` uses) runs the same writer in a separate
process fed through a pipe, acknowledging each batch, so event building and store writes
never hold the server's GIL; unacknowledged batches are rewritten by the server if the
writer dies.

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
from typing import Any

from eventstore.store import Doc, Store
from eventstore.text import replace_unencodable
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
    #: Events logged with text replaced (lone surrogates from undecodable bytes: U+FFFD, tagged).
    replaced: int = 0
    #: Failures the log thread survived (an event it could not build, a write that raised).
    failures: int = 0
    last_error: str | None = None


def loggable_event(req: Request, decision: Decision, ts: float, stats: LogStats) -> Doc:
    """``decision_event`` made safe to write anywhere: text that is not valid Unicode scalar values
    (lone surrogates, which ``wire_text`` keeps for bytes that are not UTF-8, and which a JSON
    decision request can carry too) is replaced by U+FFFD and the event tagged
    (``eventstore.text``, what the stores do), so the spill, replay and overflow files take it.
    An event that cannot be built at all is logged as a minimal deny-shaped record naming why,
    never dropped and never raised into the log thread. Both are counted in ``stats``."""
    try:
        doc = decision_event(req, decision, ts)
    except Exception as exc:  # a value of a type the event cannot hold: keep what identifies the decision
        stats.failures += 1
        stats.last_error = f"decision event: {type(exc).__name__}: {exc}"
        log.warning("decision log: cannot build the event of decision %s: %s", decision.decision_id, exc)
        doc = {"@timestamp": _iso(ts), "event.id": str(decision.decision_id), "event.kind": "event",
               "event.dataset": DATASET, "event.module": "policy", "event.action": str(decision.action),
               "ztsoc.policy.decision_id": str(decision.decision_id),
               "event.reason": f"event incomplete: {type(exc).__name__}: {exc}"[:1024]}
    cleaned = replace_unencodable(doc)
    if cleaned is None:
        return doc
    stats.replaced += 1
    log.warning("decision log: decision %s logged with undecodable text replaced", decision.decision_id)
    return cleaned


def _line(doc: Doc) -> str:
    """One JSONL line that always encodes as UTF-8 (total: an unencodable string is escaped)."""
    text = json.dumps(doc, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(doc, ensure_ascii=True, default=str)  # \udcff escapes: valid JSON, read back as written
    return text + "\n"


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
            self.safe_flush()
        self.safe_flush()

    def safe_flush(self) -> None:
        """``flush`` for a thread that must outlive any one failure (it counts and logs it instead):
        the decisions still queued are tried again at the next flush."""
        try:
            self.flush()
        except Exception as exc:
            self.stats.failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("decision log: flush failed; retrying at the next flush")

    def close(self) -> None:
        """Stop the thread after a last flush; what the store does not take stays spilled."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        else:
            self.safe_flush()
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
                    batch.append(loggable_event(req, dec, ts, self.stats))
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
                fh.write(_line(d))
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
                tmp.write_text("".join(_line(d) for d in rest), encoding="utf-8")
                os.replace(tmp, self.spill_path)
                self.stats.replayed += start
                return
        self.stats.replayed += len(docs)
        self.spill_path.unlink(missing_ok=True)
        log.info("decision log: replayed %d spilled decisions", len(docs))


# -- a writer process ------------------------------------------------------------------------
def _pack(req: Request, dec: Decision, ts: float) -> tuple[Any, ...]:
    """The fields a decision event needs, as plain values (cheap to pickle; no token)."""
    risk = req.risk
    return (ts, req.service, req.method, req.path, req.principal, req.namespace, req.source_ip,
            tuple(req.roles), tuple(req.scopes), tuple(req.groups), req.issuer, req.time,
            None if risk is None else (risk.open_alerts, risk.max_level, risk.max_rank), req.authenticated,
            dec.allow, dec.action, dec.rules, dec.reasons, dec.decision_id, dec.policy_version, dec.dry_run_rules,
            dec.policies)


def _unpack(t: tuple[Any, ...]) -> tuple[Request, Decision, float]:
    from policy.request import Risk

    (ts, service, method, path, principal, namespace, ip, roles, scopes, groups, issuer, when, risk, authenticated,
     allow, action, rules, reasons, decision_id, version, dry, policies) = t
    req = Request(service, method, path, principal=principal, namespace=namespace, source_ip=ip,
                  roles=frozenset(roles), scopes=frozenset(scopes), groups=frozenset(groups), issuer=issuer,
                  time=when, risk=None if risk is None else Risk(*risk), authenticated=authenticated)
    return req, Decision(allow, action, rules, reasons, decision_id, version, dry, policies), ts


# -- overflow: the server's queue bounded while the writer is behind ----------------------------
def overflow_path(spill_path: Path) -> Path:
    """Where the server spills decisions its writer has not taken (``<spill>.overflow``)."""
    return spill_path.with_name(spill_path.name + ".overflow")


@contextlib.contextmanager
def _overflow_lock(spill_path: Path) -> Any:
    """Server (appending) and writer (taking the file to replay) never touch it at the same time."""
    import fcntl

    lock = spill_path.with_name(spill_path.name + ".overflow.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def append_overflow(spill_path: Path, docs: list[Doc]) -> None:
    with _overflow_lock(spill_path), open(overflow_path(spill_path), "a", encoding="utf-8") as fh:
        fh.write("".join(_line(d) for d in docs))
        fh.flush()
        os.fsync(fh.fileno())


def replay_overflow(log: DecisionLog) -> None:
    """The writer, when idle: the server's overflow file into the store (kept if the store refuses).

    The file is renamed under the lock to ``<spill>.overflow.replay`` and replayed like a spill
    file: what the store does not take stays there and is retried. A server that stopped with
    a backlog left it on disk; the next server's writer replays it once idle.
    """
    taking = log.spill_path.with_name(log.spill_path.name + ".overflow.replay")
    if not taking.exists():
        with _overflow_lock(log.spill_path):
            source = overflow_path(log.spill_path)
            if not source.exists() or source.stat().st_size == 0:
                return
            os.replace(source, taking)
    replay = DecisionLog(log._get_store, taking, batch_size=log.batch_size, retry_interval_s=0, own_store=False)
    replay.flush()
    log.stats.replayed += replay.stats.replayed


#: The writer's niceness relative to the server. On a loaded machine the server's event loop
#: and this writer compete for the same cores; decisions only need to reach the store
#: eventually, so the writer yields. bench/policy.py under load (load average 15 on 2 CPUs,
#: 3 rounds each): HTTP p99 29-38 ms at the same priority, 25-30 ms niced, OPA 49-71 ms.
WRITER_NICE = 10


def _writer_main(conn: Any, store_url: str, spill_path: str, batch_size: int, retry_interval_s: float) -> None:
    """The writer process: a ``DecisionLog`` fed from the pipe; acknowledges each batch once
    it is in the store or the spill file, so the server can rewrite anything unacknowledged."""
    import signal

    from eventstore import open_store

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when the writer stops
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(WRITER_NICE)  # background work: the request path gets the CPU first
    log = DecisionLog(lambda: open_store(store_url), Path(spill_path), batch_size=batch_size,
                      retry_interval_s=retry_interval_s)
    try:
        while True:
            if not conn.poll(1.0):
                log.safe_flush()  # replays the spill file when the store is back
                if not log._spill_pending():
                    try:
                        replay_overflow(log)  # idle and caught up: what the server had to set aside
                    except Exception:
                        log.stats.failures += 1
                        logging.getLogger(__name__).exception("decision log: overflow replay failed")
                continue
            try:
                msg = conn.recv()
            except EOFError:
                break
            if msg is None:
                break
            seq, batch = msg
            for packed in batch:
                log._queue.append(_unpack(packed))
            log.safe_flush()
            conn.send(seq)
    finally:
        log.close()


#: At close, a queue longer than this many batches is spilled instead of sent to the writer.
CLOSE_BACKLOG_BATCHES = 5


@dataclass
class ProcessDecisionLog:
    """``DecisionLog`` in a separate process, so building and writing events never holds the
    server's GIL. The server keeps every batch until the writer acknowledges it; if the writer
    dies, the server writes (or spills) the unacknowledged batches itself and carries on
    in process. Writes are idempotent by ``event.id``, so a batch written twice is stored once."""

    store_url: str
    spill_path: Path
    batch_size: int = 1000
    flush_interval_s: float = 0.5
    retry_interval_s: float = 5.0
    #: Queued decisions beyond this (the writer is behind) are spilled to ``<spill>.overflow`` by a
    #: thread of their own, newest first, down to half; the writer replays that file when idle.
    #: Memory stays bounded (a packed decision is a few hundred bytes) however long the writer lags.
    max_pending: int = 200_000
    stats: LogStats = field(default_factory=LogStats)
    #: Packed decisions (``_pack``): plain tuples of strings, numbers and tuples, which the
    #: garbage collector stops tracking after their first young collection. Queued
    #: ``Request``/``Decision`` objects stay tracked, and while the writer is behind (a loaded
    #: machine) tens of thousands of them made each full collection stop the event loop for
    #: 25-50 ms of CPU (150k tracked objects; measured with gc.callbacks under wrk).
    _queue: deque[tuple[Any, ...]] = field(default_factory=deque, repr=False)
    _unacked: dict[int, list[tuple[Any, ...]]] = field(default_factory=dict, repr=False)
    _seq: int = 0
    _conn: Any = field(default=None, repr=False)
    _proc: Any = field(default=None, repr=False)
    _fallback: DecisionLog | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _overflow_wake: threading.Event = field(default_factory=threading.Event, repr=False)
    _overflow_thread: threading.Thread | None = field(default=None, repr=False)

    def submit(self, request: Request, decision: Decision) -> None:
        self._queue.append(_pack(request, decision, time.time()))
        self.stats.submitted += 1
        n = len(self._queue)
        if n >= self.batch_size:
            self._wake.set()
        if n > self.max_pending:
            self._overflow_wake.set()

    def start(self) -> ProcessDecisionLog:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_writer_main, name="ztsoc-decision-writer", daemon=False,
                                 args=(child, self.store_url, str(self.spill_path), self.batch_size,
                                       self.retry_interval_s))
        self._proc.start()
        child.close()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ztsoc-decision-sender", daemon=True)
        self._thread.start()
        self._overflow_thread = threading.Thread(target=self._overflow_run, name="ztsoc-decision-overflow",
                                                 daemon=True)
        self._overflow_thread.start()
        return self

    def _overflow_run(self) -> None:
        while not self._stop.is_set():
            self._overflow_wake.wait(1.0)
            self._overflow_wake.clear()
            self.spill_overflow()

    def spill_overflow(self, target: int | None = None) -> int:
        """Newest queued decisions to ``<spill>.overflow`` until the queue is at ``target`` (half ``max_pending``)."""
        target = self.max_pending // 2 if target is None else target
        spilled = 0
        while len(self._queue) > target:
            batch: list[tuple[Any, ...]] = []
            while len(self._queue) > target and len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.pop())
                except IndexError:
                    break
            if not batch:
                break
            try:
                append_overflow(self.spill_path, [loggable_event(*_unpack(p), self.stats) for p in batch])
            except OSError as exc:
                self._queue.extend(reversed(batch))  # keep them rather than lose them; retried next wake
                self.stats.last_error = f"overflow spill: {exc}"
                log.warning("decision log: cannot spill overflow: %s", exc)
                break
            spilled += len(batch)
            self.stats.spilled += len(batch)
        return spilled

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(len(b) for b in self._unacked.values())

    def _go_in_process(self, why: str) -> None:
        """The writer is gone: rewrite what it had not acknowledged, and log in process from now on."""
        from eventstore import open_store

        if self._fallback is None:
            log.warning("decision writer process unavailable (%s): logging in process", why)
            self.stats.last_error = f"writer process: {why}"
            url = self.store_url
            self._fallback = DecisionLog(lambda: open_store(url), self.spill_path, batch_size=self.batch_size,
                                         retry_interval_s=self.retry_interval_s)
        for seq in sorted(self._unacked):
            for packed in self._unacked.pop(seq):
                self._fallback._queue.append(_unpack(packed))
        self._fallback.safe_flush()

    def _drain_acks(self) -> None:
        try:
            while self._conn.poll(0):
                seq = self._conn.recv()
                batch = self._unacked.pop(seq, None)
                if batch is not None:
                    self.stats.written += len(batch)
        except (EOFError, OSError):
            self._go_in_process("pipe closed")

    def _send_pending(self) -> None:
        while self._queue:
            batch: list[tuple[Any, ...]] = []
            while self._queue and len(batch) < self.batch_size:
                batch.append(self._queue.popleft())
            if self._fallback is not None:
                for packed in batch:
                    self._fallback._queue.append(_unpack(packed))
                self._fallback.safe_flush()
                continue
            self._seq += 1
            self._unacked[self._seq] = batch
            try:
                self._conn.send((self._seq, batch))
            except (OSError, ValueError) as exc:
                self._go_in_process(str(exc))
        if self._fallback is None:
            self._drain_acks()
            if self._proc is not None and not self._proc.is_alive():
                self._go_in_process(f"exited with {self._proc.exitcode}")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._safe_send()
        self._safe_send()

    def _safe_send(self) -> None:
        """The sender thread outlives any one failure: counted, logged, retried at the next wake."""
        try:
            self._send_pending()
        except Exception as exc:
            self.stats.failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("decision log: sending decisions failed; retrying")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._overflow_wake.set()
        if self._overflow_thread is not None:
            self._overflow_thread.join(timeout=30)
            self._overflow_thread = None
        if len(self._queue) > self.batch_size * CLOSE_BACKLOG_BATCHES:
            # The writer is behind: the backlog goes to disk now (replayed at the next start) rather
            # than making shutdown wait on a slow writer, where a supervisor's SIGKILL would lose it.
            self.spill_overflow(target=0)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._fallback is None and self._conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(None)
            deadline = time.monotonic() + 60
            while self._unacked and time.monotonic() < deadline and self._proc.is_alive():
                if self._conn.poll(0.1):
                    self._drain_acks()
            self._drain_acks()
            self._proc.join(timeout=max(1.0, deadline - time.monotonic()))
            if self._unacked:
                self._go_in_process("did not acknowledge every batch before exiting")
        if self._fallback is not None:
            self._fallback.close()
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()

    def spilled_lines(self) -> int:
        try:
            with open(self.spill_path, "rb") as fh:
                return sum(1 for _ in fh)
        except FileNotFoundError:
            return 0
