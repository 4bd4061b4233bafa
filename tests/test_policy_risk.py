"""The source's risk from open alerts in both real stores: a compromised caller loses access
when an alert opens and gets it back when the alert is closed, without a policy edit."""

from __future__ import annotations

from eventstore import AlertChange, Store, open_store
from policy.engine import Engine
from policy.language import policy_set_from_text
from policy.request import Request, Risk
from policy.risk import StaticRisk, StoreRisk

PORTAL = "spiffe://gov.example/ns/portal/sa/web"
POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: clean-callers
    effect: allow
    destination: {services: [payments]}
    when: {risk: {max_open_alerts: 0}}
"""


def _alert(aid: str, entity: str, level: str, kind: str = "user") -> dict[str, object]:
    return {
        "event.id": aid, "@timestamp": "2026-03-04T10:00:00.000Z", "event.kind": "alert",
        "rule.name": f"rule {aid}", "ztsoc.alert.status": "open", "ztsoc.alert.level": level,
        "ztsoc.alert.entity.type": kind, "ztsoc.alert.entity.value": entity,
    }


def test_snapshot_counts_unresolved_alerts_by_principal_and_ip(store: Store) -> None:
    store.put_alerts([
        _alert("a1", PORTAL, "medium"), _alert("a2", PORTAL, "high"), _alert("a3", "10.1.2.3", "low", "ip"),
        _alert("a4", "someone-else", "critical"),
    ])
    store.update_alert("a4", AlertChange("analyst", "close", {"ztsoc.alert.status": "closed"}))
    risk = StoreRisk(lambda: store)
    assert risk.risk(PORTAL, None) is None  # no snapshot yet: unknown, not "clean"
    risk.refresh()
    assert risk.last_error is None
    assert risk.risk(PORTAL, None) == Risk(2, "high", 4)
    assert risk.risk(PORTAL, "10.1.2.3") == Risk(3, "high", 4)
    assert risk.risk("someone-else", None) == Risk()  # its only alert is closed
    assert risk.risk("nobody", "192.0.2.1") == Risk()


def test_caller_loses_and_regains_access_as_alerts_open_and_close(store: Store) -> None:
    risk = StoreRisk(lambda: store)
    engine = Engine.from_policy_set(policy_set_from_text(POLICY), risk=risk)

    def allowed() -> bool:
        return engine.decide(Request("payments", "POST", "/charges", principal=PORTAL)).allow

    risk.refresh()
    assert allowed()
    store.put_alerts([_alert("b1", PORTAL, "high")])
    risk.refresh()
    assert not allowed()
    store.update_alert("b1", AlertChange("analyst", "close", {"ztsoc.alert.status": "closed"}))
    risk.refresh()
    assert allowed()


def test_store_down_makes_risk_unknown_and_risky_rules_fail_closed() -> None:
    risk = StoreRisk(lambda: open_store("http://127.0.0.1:9/?prefix=ztsoc-dead"), max_age_s=0.0)
    risk.refresh()
    assert risk.last_error and "cannot reach" in risk.last_error
    engine = Engine.from_policy_set(policy_set_from_text(POLICY), risk=risk)
    d = engine.decide(Request("payments", "POST", "/charges", principal=PORTAL))
    assert not d.allow and "risk of" in d.reason and "unknown" in d.reason


def test_background_refresh_thread(sqlite_store: Store) -> None:
    import time

    sqlite_store.put_alerts([_alert("c1", PORTAL, "low")])
    risk = StoreRisk(lambda: sqlite_store, ttl_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while risk.risk(PORTAL, None) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert risk.risk(PORTAL, None) == Risk(1, "low", 2)
    finally:
        risk.stop()


def test_static_risk_combines_entities() -> None:
    r = StaticRisk({"a": Risk(1, "low", 2), "10.0.0.1": Risk(2, "high", 4)})
    assert r.risk("a", "10.0.0.1") == Risk(3, "high", 4)
    assert r.risk(None, None) == Risk()


def test_a_snapshot_cut_at_the_limit_is_unknown_not_clean(sqlite_store: Store) -> None:
    """Alerts flooded on other entities must not push a compromised caller out of the snapshot."""
    import json

    from policy.server import DecisionHandler

    sqlite_store.put_alerts([_alert("compromised", PORTAL, "critical")])
    risk = StoreRisk(lambda: sqlite_store, limit=50)
    engine = Engine.from_policy_set(policy_set_from_text(POLICY), risk=risk)
    handler = DecisionHandler(engine, ready=risk.readiness)
    risk.refresh()
    d = engine.decide(Request("payments", "GET", "/x", principal=PORTAL))
    assert not d.allow and "no allow rule matched" in d.reason
    assert handler.admin("GET", "/readyz", b"").status == 200
    # Scan alerts from many addresses (2001:... sorts before spiffe://): more groups than the limit.
    sqlite_store.put_alerts([_alert(f"scan{i}", f"2001:db8::{i:x}", "low", "ip") for i in range(60)])
    risk.refresh()
    assert risk.risk(PORTAL, None) is None and risk.risk("someone-new", "192.0.2.1") is None
    d = engine.decide(Request("payments", "GET", "/x", principal=PORTAL))
    assert not d.allow and "unknown" in d.reason
    resp = handler.admin("GET", "/readyz", b"")
    body = json.loads(resp.body)
    assert resp.status == 503 and body["ready"] is False and "limit of 50" in body["reason"]
    # Below the limit again (the flood closed): complete, decided on, ready.
    for i in range(60):
        sqlite_store.update_alert(f"scan{i}", AlertChange("analyst", "close", {"ztsoc.alert.status": "closed"}))
    risk.refresh()
    assert risk.risk(PORTAL, None) == Risk(1, "critical", 5)
    assert handler.admin("GET", "/readyz", b"").status == 200
