"""The dashboard's JSON API answers with the store's own counts, on both stores."""

from __future__ import annotations

import json

from dashboards.server import Dashboard, make_server
from eventstore.store import Store
from tests.dashboard_seed import seed


def get(app: Dashboard, path: str, **params: str) -> tuple[int, object]:
    response = app.handle("GET", path, dict(params), {}, b"")
    return response.status, json.loads(response.body)


def test_overview_counts_match_store(store: Store) -> None:
    seeded = seed(store)
    app = Dashboard(store)
    status, data = get(app, "/api/overview", since="24h")
    assert status == 200 and isinstance(data, dict)
    assert data["open_alerts"] == seeded["alerts"] == store.count("ztsoc.alert.status:open", index="alerts")
    assert data["open_by_level"] == {"informational": 0, "low": 1, "medium": 3, "high": 2, "critical": 1}
    assert {r["dataset"]: r["events"] for r in data["collection"]} == {
        "network.flow": 30, "network.dns": 30, "network.tls": 30, "policy.decision": 30, "policy.change": 1}
    assert sum(r["count"] for r in data["alerts_over_time"]) == seeded["alerts"]
    assert data["top_entities"][0]["entity"] in ("10.20.1.1", "10.20.1.2")


def test_network_and_identity_pages(store: Store) -> None:
    seed(store)
    app = Dashboard(store)
    _, net = get(app, "/api/network", since="24h")
    assert isinstance(net, dict)
    assert [t["ip"] for t in net["top_talkers"]][:1] == ["10.20.1.3"]  # 10 flows x 3000 bytes
    assert net["odd_domains"] == [{"domain": "exfil-cdn.example", "names": 30}]
    assert net["tls_sni"] == [{"server_name": "portal.gov.example", "count": 30}]
    _, ident = get(app, "/api/identity", since="24h")
    assert isinstance(ident, dict)
    assert [c["actor"] for c in ident["policy_changes"]] == ["jorge.silva"]
    assert ident["top_denied"] == [{"principal": "spiffe://gov.example/ns/portal/sa/web", "service": "records",
                                    "count": 10}]


def test_alert_filters_detail_and_close(store: Store) -> None:
    seed(store)
    app = Dashboard(store, analyst="tester")
    _, page = get(app, "/api/alerts", level="medium")
    assert isinstance(page, dict) and page["total"] == 3
    _, detail = get(app, "/api/alerts/alert-0")
    assert isinstance(detail, dict) and [e["event.id"] for e in detail["evidence"]] == ["flow-0"]
    response = app.handle("POST", "/api/alerts/alert-0/close", {}, {"x-analyst": "ana"},
                          json.dumps({"reason": "true_positive", "note": "contained"}).encode())
    assert response.status == 200, response.body
    alert = store.get_alert("alert-0")
    assert alert is not None and alert["ztsoc.alert.status"] == "closed"
    assert alert["ztsoc.alert.history"][-1]["actor"] == "ana"
    again = app.handle("POST", "/api/alerts/alert-0/close", {}, {}, b'{"reason": "benign"}')
    assert again.status == 409  # a closed alert cannot be closed again
    bad = app.handle("POST", "/api/alerts/alert-1/close", {}, {}, b'{"reason": "because"}')
    assert bad.status == 409 and b"true_positive" in bad.body
    assert app.handle("GET", "/api/alerts/nope", {}, {}, b"").status == 404
    assert app.handle("GET", "/api/nosuchview", {}, {}, b"").status == 404


def test_bad_query_is_a_400_with_the_reason(sqlite_store: Store) -> None:
    app = Dashboard(sqlite_store)
    status, body = get(app, "/api/alerts", q="rule.name:(unclosed")
    assert status == 400 and isinstance(body, dict) and "bad query" in body["error"]


def test_token_required_beyond_loopback(sqlite_store: Store) -> None:
    server, app = make_server(sqlite_store, "0.0.0.0", 0)
    try:
        assert app.token
        assert app.handle("GET", "/api/overview", {}, {}, b"").status == 401
        assert app.handle("GET", "/healthz", {}, {}, b"").status == 200
        ok = app.handle("GET", "/api/exercises", {}, {"authorization": f"Bearer {app.token}"}, b"")
        assert ok.status == 200
        assert app.handle("GET", "/api/exercises", {"token": "wrong"}, {}, b"").status == 401
    finally:
        server.server_close()
    local, app2 = make_server(sqlite_store, "127.0.0.1", 0)
    local.server_close()
    assert app2.token is None
