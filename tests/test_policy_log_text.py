"""One decision whose text is not UTF-8 never stops the decision log (audit defect 3).

A request target or header with a byte that is not UTF-8 is kept by ``wire_text`` as a lone
surrogate (the canonicaliser then refuses it, a logged deny). The production log
(``ProcessDecisionLog``: writer process, in-process fallback) runs here against a store that
is down, so every decision goes through the spill file, exactly where a surrogate used to
raise and kill the writer and then the sender thread, leaving every later decision unlogged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from eventstore.text import REPLACED_TAG
from policy.canonical import FrontConfig, HttpRequest, wire_text
from policy.decision_log import DecisionLog, ProcessDecisionLog, overflow_path
from policy.engine import Engine
from policy.language import policy_set_from_text
from policy.risk import StaticRisk
from policy.server import DecisionHandler

POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: any
    effect: allow
    destination: {services: [records], methods: [GET]}
"""
DEAD_STORE = "http://127.0.0.1:9/?prefix=ztsoc-dead"


def _handler(sink: object) -> DecisionHandler:
    engine = Engine.from_policy_set(policy_set_from_text(POLICY), risk=StaticRisk(), sink=sink)  # type: ignore[arg-type]
    return DecisionHandler(engine, front=FrontConfig(service="records"))


def _ask(h: DecisionHandler, raw: bytes, header: bytes = b"x") -> str:
    http = HttpRequest("GET", wire_text(b"/authz" + raw), [("host", "records"), ("x-note", wire_text(header))],
                       "10.0.0.1")
    resp = h.handle(http, b"")
    return dict(resp.headers)[b"x-ztsoc-decision-id"].decode()


def _spilled(*paths: Path) -> dict[str, dict[str, object]]:
    out = {}
    for p in paths:
        if p.exists():
            for line in p.read_text(encoding="utf-8").splitlines():
                doc = json.loads(line)
                out[doc["event.id"]] = doc
    return out


def _wait(cond: object, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_non_utf8_target_is_logged_replaced_and_the_log_carries_on(tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    log = ProcessDecisionLog(DEAD_STORE, spill, flush_interval_s=0.05, retry_interval_s=0.05).start()
    h = _handler(log)
    try:
        ids = [_ask(h, b"/records/ok")]
        bad = _ask(h, b"/records/\xff")
        ids.append(bad)
        assert _wait(lambda: bad in _spilled(spill))
        assert log._proc.is_alive() and log._thread is not None and log._thread.is_alive()
        ids += [_ask(h, f"/records/after{i}".encode()) for i in range(5)]
        assert _wait(lambda: set(ids) <= set(_spilled(spill)))
        assert _wait(lambda: log.pending == 0)  # every batch acknowledged
        assert log._proc.is_alive() and log._thread.is_alive()
    finally:
        log.close()
    docs = _spilled(spill)
    assert set(docs) == set(ids)
    assert docs[bad]["url.path"] == "/records/\ufffd" and REPLACED_TAG in docs[bad]["tags"]  # type: ignore[operator]
    assert docs[bad]["event.action"] == "deny"


def test_the_in_process_fallback_survives_it_too(tmp_path: Path) -> None:
    """The writer process gone: the sender thread logs in process, and a bad event does not kill it."""
    spill = tmp_path / "spill.jsonl"
    log = ProcessDecisionLog(DEAD_STORE, spill, flush_interval_s=0.05, retry_interval_s=0.05).start()
    h = _handler(log)
    try:
        log._proc.kill()
        log._proc.join()
        ids = [_ask(h, b"/records/\xfe\xff", header=b"\xc3(")]
        ids += [_ask(h, f"/records/after{i}".encode()) for i in range(3)]
        assert _wait(lambda: set(ids) <= set(_spilled(spill)))
        assert log._thread is not None and log._thread.is_alive() and log._fallback is not None
        assert log._fallback.stats.replaced == 1
    finally:
        log.close()
    assert set(_spilled(spill)) == set(ids)


def test_every_write_path_is_total(tmp_path: Path) -> None:
    """Spill, replay (rewriting what is left) and the server's overflow file: none raises on such text."""
    spill = tmp_path / "spill.jsonl"
    log = DecisionLog(lambda: (_ for _ in ()).throw(ConnectionError("down")), spill, retry_interval_s=0)  # type: ignore[arg-type, return-value]
    h = _handler(log)
    ids = [_ask(h, b"/a/\xff"), _ask(h, b"/b")]
    log.flush()  # spilled
    log._spill([{"event.id": "raw", "url.path": "/\udcff"}])  # a surrogate written as is: escaped, still JSON
    log.flush()  # replayed, refused again, the rest rewritten
    assert set(_spilled(spill)) == {*ids, "raw"} and log.stats.replaced == 1
    plog = ProcessDecisionLog(DEAD_STORE, tmp_path / "p.jsonl", max_pending=0)
    h2 = _handler(plog)
    more = [_ask(h2, b"/c/\xff"), _ask(h2, b"/d")]
    assert plog.spill_overflow(target=0) == 2
    assert set(_spilled(overflow_path(tmp_path / "p.jsonl"))) == set(more) and plog.stats.replaced == 1
