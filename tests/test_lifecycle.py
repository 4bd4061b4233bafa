"""The alert lifecycle over both stores: transitions, refusals, the audit trail, bulk, the queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alertseed import T0, alert

from detections import lifecycle
from detections.lifecycle import Request, TransitionError
from eventstore import Store
from eventstore.errors import AlertNotFound


def test_ack_records_who_when_from_to(store: Store) -> None:
    store.put_alerts([alert("a1")])
    out = lifecycle.ack(store, "a1", actor="maria", note="looking")
    assert out["ztsoc.alert.status"] == "acknowledged"
    stored = store.get_alert("a1")
    assert stored is not None
    [entry] = stored["ztsoc.alert.history"]
    assert entry["actor"] == "maria"
    assert entry["action"] == "ack"
    assert entry["note"] == "looking"
    assert entry["@timestamp"].startswith("20")
    assert entry["changes"]["ztsoc.alert.status"] == {"from": "open", "to": "acknowledged"}


def test_full_lifecycle_and_refusals(store: Store) -> None:
    store.put_alerts([alert("a1")])
    lifecycle.assign(store, "a1", "omar", actor="maria")
    with pytest.raises(TransitionError, match="already assigned to omar"):
        lifecycle.assign(store, "a1", "omar", actor="maria")
    lifecycle.escalate(store, "a1", actor="omar")
    with pytest.raises(TransitionError, match="cannot ack alert a1: it is escalated"):
        lifecycle.ack(store, "a1", actor="omar")
    with pytest.raises(TransitionError, match="close needs --reason"):
        lifecycle.close(store, "a1", "maybe", actor="omar")
    lifecycle.close(store, "a1", "true_positive", actor="omar", note="contained")
    with pytest.raises(TransitionError, match="it is closed; it is already closed"):
        lifecycle.close(store, "a1", "benign", actor="omar")
    with pytest.raises(TransitionError, match="cannot escalate alert a1: it is closed"):
        lifecycle.escalate(store, "a1", actor="omar")
    lifecycle.add_note(store, "a1", "lessons learned written up", actor="lead")
    reopened = lifecycle.reopen(store, "a1", actor="lead", note="same source again")
    assert reopened["ztsoc.alert.status"] == "open"
    assert "ztsoc.alert.close_reason" not in reopened
    with pytest.raises(TransitionError, match="only a closed alert can be reopened"):
        lifecycle.reopen(store, "a1", actor="lead")
    history = (store.get_alert("a1") or {})["ztsoc.alert.history"]
    assert [h["action"] for h in history] == ["assign", "escalate", "close", "note", "reopen"]
    assert history[2]["changes"]["ztsoc.alert.close_reason"] == {"from": None, "to": "true_positive"}
    assert history[3]["changes"] == {}
    assert history[4]["changes"]["ztsoc.alert.status"] == {"from": "closed", "to": "open"}
    assert [h["actor"] for h in history] == ["maria", "omar", "omar", "lead", "lead"]


def test_lifecycle_survives_a_detection_rerun(store: Store) -> None:
    store.put_alerts([alert("a1", level="medium")])
    lifecycle.close(store, "a1", "false_positive", actor="maria")
    store.put_alerts([alert("a1", level="high", fields={"ztsoc.alert.evidence_count": 9})])
    again = store.get_alert("a1") or {}
    assert again["ztsoc.alert.status"] == "closed"
    assert again["ztsoc.alert.level"] == "high"
    assert len(again["ztsoc.alert.history"]) == 1


def test_note_needs_text_and_unknown_alert(store: Store) -> None:
    store.put_alerts([alert("a1")])
    with pytest.raises(TransitionError, match="note needs some text"):
        lifecycle.add_note(store, "a1", "  ", actor="x")
    with pytest.raises(AlertNotFound):
        lifecycle.ack(store, "nope", actor="x")


def test_analyst_name_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOC_ANALYST", "night-shift")
    assert lifecycle.analyst_name() == "night-shift"
    monkeypatch.delenv("SOC_ANALYST")
    assert lifecycle.analyst_name()


def test_plan_change_is_pure() -> None:
    doc = {"event.id": "x", "ztsoc.alert.status": "open"}
    change = lifecycle.plan_change(doc, Request("close", "me", reason="benign", note=" fine "))
    assert change.changes == {"ztsoc.alert.status": "closed", "ztsoc.alert.close_reason": "benign"}
    assert change.note == "fine"
    assert doc == {"event.id": "x", "ztsoc.alert.status": "open"}
    with pytest.raises(TransitionError, match="unknown action"):
        lifecycle.plan_change(doc, Request("delete", "me"))


def test_bulk_preview_then_apply(store: Store) -> None:
    store.put_alerts([alert(f"b{i}", entity="10.0.0.9", at=T0 + timedelta(minutes=i)) for i in range(10)]
                     + [alert("other", entity="10.0.0.7")])
    for i in range(3):
        lifecycle.close(store, f"b{i}", "benign", actor="maria")
    req = Request("close", "bulk-bot", reason="false_positive", note="scanner")
    plan = lifecycle.plan_bulk(store, 'ztsoc.alert.entity.value:"10.0.0.9"', req)
    assert plan.matched == 10
    assert len(plan.changes) == 7
    assert plan.refusal_counts() == {"closed": 3}
    assert store.count("ztsoc.alert.status:closed", index="alerts") == 3  # the preview wrote nothing
    result = lifecycle.apply_bulk(store, plan)
    assert result.changed == 7
    assert result.failed == []
    assert store.count("ztsoc.alert.close_reason:false_positive", index="alerts") == 7
    assert store.count("ztsoc.alert.status:closed", index="alerts") == 10
    assert (store.get_alert("other") or {})["ztsoc.alert.status"] == "open"
    assert (store.get_alert("b9") or {})["ztsoc.alert.history"][0]["actor"] == "bulk-bot"


def test_find_alert_by_prefix(store: Store) -> None:
    store.put_alerts([alert("f3c9a1b2deadbeef"), alert("f3c9ffff00000000")])
    assert lifecycle.find_alert(store, "f3c9a1")["event.id"] == "f3c9a1b2deadbeef"
    with pytest.raises(ValueError, match="ambiguous"):
        lifecycle.find_alert(store, "f3c9")
    with pytest.raises(AlertNotFound):
        lifecycle.find_alert(store, "zzzz")

