"""Decision logging to both real stores: ECS fields, batching in the background, and no
decision lost while the store is down (spill to JSONL, replay when it is back)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ecs_allowed import check as ecs_check
from policy_tokens import DOMAIN

from eventstore import Store, open_store
from eventstore.schema import field_type
from policy.decision_log import DATASET, DecisionLog, decision_event, request_from_event
from policy.engine import Engine
from policy.language import policy_set_from_text
from policy.request import Request, Risk
from policy.risk import StaticRisk

POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: web
    effect: allow
    source: {principals: ["spiffe://gov.example/ns/portal/sa/*"]}
    destination: {services: [records], methods: [GET]}
  - name: soon
    effect: deny
    dry_run: true
    destination: {services: [records], paths: ["/export/**"]}
"""
PORTAL = f"spiffe://{DOMAIN}/ns/portal/sa/web"
DEAD_STORE = "http://127.0.0.1:9/?prefix=ztsoc-dead"


def _engine(sink: DecisionLog) -> Engine:
    return Engine.from_policy_set(policy_set_from_text(POLICY, "t.yaml"), risk=StaticRisk(), sink=sink)


def _req(i: int, **kw: object) -> Request:
    base: dict[str, object] = {"service": "records", "method": "GET", "path": f"/records/{i}", "principal": PORTAL,
                               "source_ip": "10.1.2.3", "roles": frozenset({"clerk"})}
    base.update(kw)
    return Request(**base)  # type: ignore[arg-type]


class Switch:
    """Opens a real but unreachable Elasticsearch while ``down``, then the test's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = True
        self.opened = 0

    def __call__(self) -> Store:
        self.opened += 1
        if self.down:
            return open_store(DEAD_STORE)
        return self.store


def _logged(store: Store) -> list[dict[str, object]]:
    return list(store.scan(f'event.dataset:"{DATASET}"'))


def test_decisions_are_ecs_events(store: Store, tmp_path: Path) -> None:
    log = DecisionLog(lambda: store, tmp_path / "spill.jsonl", own_store=False)
    e = _engine(log)
    allowed = e.decide(_req(1))
    denied = e.decide(_req(2, method="DELETE"))
    would = e.decide(_req(3, path="/export/all", risk=Risk(2, "low", 2)))
    log.flush()
    docs = {d["event.id"]: d for d in _logged(store)}
    assert set(docs) == {allowed.decision_id, denied.decision_id, would.decision_id}
    a, d, w = docs[allowed.decision_id], docs[denied.decision_id], docs[would.decision_id]
    assert a["event.kind"] == "event" and a["event.category"] == ["network"]
    assert a["event.type"] == ["access", "allowed"] and a["event.action"] == "allow" and a["event.outcome"] == "success"
    assert d["event.type"] == ["access", "denied"] and d["event.action"] == "deny" and d["event.outcome"] == "failure"
    assert w["event.action"] == "would_deny" and w["ztsoc.policy.would_deny"] is True
    assert w["ztsoc.policy.rule"] == ["t/web", "t/soon"]
    assert a["user.name"] == PORTAL and a["service.name"] == "records" and a["url.path"] == "/records/1"
    assert a["http.request.method"] == "GET" and a["source.ip"] == "10.1.2.3"
    assert "default deny" in str(d["event.reason"])
    for doc in docs.values():
        ecs_check(doc)
        unknown = [k for k in doc if field_type(k) is None]
        assert not unknown, f"fields missing from eventstore/schema.py: {unknown}"
    # What-if replays need the request back from the event.
    back = request_from_event(w)
    assert (back.service, back.method, back.path, back.principal) == ("records", "GET", "/export/all", PORTAL)
    assert back.risk == Risk(2, "low", 2) and back.roles == {"clerk"}


def test_store_down_spills_and_replays_none_lost(store: Store, tmp_path: Path) -> None:
    switch = Switch(store)
    spill = tmp_path / "spill.jsonl"
    log = DecisionLog(switch, spill, batch_size=40, retry_interval_s=0)
    e = _engine(log)
    ids = [e.decide(_req(i)).decision_id for i in range(50)]
    log.flush()
    assert log.spilled_lines() == 50 and log.stats.spilled == 50 and log.stats.last_error
    ids += [e.decide(_req(i)).decision_id for i in range(50, 80)]
    log.flush()
    assert log.spilled_lines() == 80 and _logged(store) == []

    switch.down = False
    ids += [e.decide(_req(i)).decision_id for i in range(80, 100)]
    log.flush()
    assert not spill.exists()
    stored = sorted(str(d["event.id"]) for d in _logged(store))
    assert stored == sorted(ids)  # all 100, each once
    assert log.stats.replayed == 80 and log.stats.written == 100
    # Replaying again (a crash between write and truncate) stores nothing twice.
    spill.write_text("".join(json.dumps(decision_event(_req(i), e.decide(_req(i)))) + "\n" for i in range(3)))
    log.flush()
    assert len(_logged(store)) == 103


def test_background_thread_batches_off_the_request_path(sqlite_store: Store, tmp_path: Path) -> None:
    log = DecisionLog(lambda: sqlite_store, tmp_path / "spill.jsonl", flush_interval_s=0.05,
                      own_store=False).start()
    e = _engine(log)
    started = time.perf_counter()
    ids = {e.decide(_req(i)).decision_id for i in range(2000)}
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 20
    while len(_logged(sqlite_store)) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    log.close()
    assert {d["event.id"] for d in _logged(sqlite_store)} == ids
    assert elapsed < 20  # sanity only: the decisions did not wait for 2000 single writes


def test_close_with_store_down_leaves_everything_spilled(tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    log = DecisionLog(lambda: open_store(DEAD_STORE), spill).start()
    e = _engine(log)
    for i in range(25):
        e.decide(_req(i))
    log.close()
    lines = [json.loads(x) for x in spill.read_text().splitlines()]
    assert len(lines) == 25 and all(x["event.dataset"] == DATASET for x in lines)


def test_backlog_beyond_max_pending_spills_then_replays(sqlite_store: Store, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    log = DecisionLog(lambda: sqlite_store, spill, batch_size=10, max_pending=25, retry_interval_s=0,
                      own_store=False)
    e = _engine(log)
    ids = {e.decide(_req(i)).decision_id for i in range(100)}
    log.flush()  # 100 queued > 25: the oldest batches spill instead of waiting on the store
    assert log.stats.spilled > 0
    log.flush()  # next flush replays them
    assert not spill.exists()
    assert {d["event.id"] for d in _logged(sqlite_store)} == ids


def test_writer_process_logs_everything(tmp_path: Path) -> None:
    from policy.decision_log import ProcessDecisionLog

    url = f"sqlite:///{tmp_path / 'soc.db'}"
    log = ProcessDecisionLog(url, tmp_path / "spill.jsonl", flush_interval_s=0.05).start()
    e = _engine(log)  # type: ignore[arg-type]
    ids = {e.decide(_req(i, risk=Risk(1, "low", 2))).decision_id for i in range(1500)}
    log.close()
    store = open_store(url)
    try:
        docs = _logged(store)
        assert {d["event.id"] for d in docs} == ids
        assert all(d["ztsoc.policy.risk"] == 1.0 and d["user.name"] == PORTAL for d in docs)
    finally:
        store.close()
    assert log.stats.written == 1500 and log.pending == 0


def test_writer_process_spills_when_store_down_and_replays_on_next_start(tmp_path: Path) -> None:
    from policy.decision_log import ProcessDecisionLog

    spill = tmp_path / "spill.jsonl"
    log = ProcessDecisionLog(DEAD_STORE, spill, flush_interval_s=0.05).start()
    e = _engine(log)  # type: ignore[arg-type]
    ids = {e.decide(_req(i)).decision_id for i in range(200)}
    log.close()
    assert {json.loads(x)["event.id"] for x in spill.read_text().splitlines()} == ids
    url = f"sqlite:///{tmp_path / 'soc.db'}"
    ProcessDecisionLog(url, spill).start().close()
    assert not spill.exists()
    store = open_store(url)
    try:
        assert {d["event.id"] for d in _logged(store)} == ids
    finally:
        store.close()


def test_writer_process_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    from policy.decision_log import ProcessDecisionLog

    url = f"sqlite:///{tmp_path / 'soc.db'}"
    log = ProcessDecisionLog(url, tmp_path / "spill.jsonl", flush_interval_s=0.05).start()
    e = _engine(log)  # type: ignore[arg-type]
    ids = {e.decide(_req(i)).decision_id for i in range(300)}
    time.sleep(0.3)
    log._proc.kill()  # the writer dies with batches in flight or queued
    log._proc.join()
    ids |= {e.decide(_req(i)).decision_id for i in range(300, 600)}
    log.close()
    assert log.stats.last_error and "writer process" in log.stats.last_error
    store = open_store(url)
    try:
        assert {d["event.id"] for d in _logged(store)} == ids
    finally:
        store.close()


def test_writer_behind_the_server_queue_stays_bounded_and_nothing_is_lost(tmp_path: Path) -> None:
    """A stalled writer (SIGSTOP): the server's queue spills to <spill>.overflow past max_pending, the
    writer replays it once it runs again, and every decision reaches the store exactly once."""
    import os
    import signal

    from policy.decision_log import ProcessDecisionLog, overflow_path

    url = f"sqlite:///{tmp_path / 'soc.db'}"
    spill = tmp_path / "spill.jsonl"
    log = ProcessDecisionLog(url, spill, batch_size=100, flush_interval_s=0.05, max_pending=400).start()
    e = _engine(log)  # type: ignore[arg-type]
    os.kill(log._proc.pid, signal.SIGSTOP)
    try:
        ids = set()
        for i in range(3000):
            ids.add(e.decide(_req(i)).decision_id)
            if i % 500 == 499:
                time.sleep(0.2)  # let the overflow thread run, as the event loop would between requests
        deadline = time.monotonic() + 10
        while len(log._queue) > 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(log._queue) <= 400  # bounded while the writer is stopped
        # What the stopped writer's socket buffer did not take was spilled, not kept in memory.
        assert overflow_path(spill).exists() and log.stats.spilled >= 500
    finally:
        os.kill(log._proc.pid, signal.SIGCONT)
    log.close()  # the backlog goes to disk at once, not through the slow writer
    # The next server's writer replays the overflow file once idle.
    nxt = ProcessDecisionLog(url, spill, flush_interval_s=0.05).start()
    deadline = time.monotonic() + 30
    while (overflow_path(spill).exists() or spill.with_name(spill.name + ".overflow.replay").exists()) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    nxt.close()
    assert not overflow_path(spill).exists()
    store = open_store(url)
    try:
        docs = _logged(store)
        assert {d["event.id"] for d in docs} == ids and len(docs) == 3000
    finally:
        store.close()
