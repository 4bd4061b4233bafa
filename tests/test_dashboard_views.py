"""The dashboard's JSON API answers with the store's own counts, on both stores, through the real server."""

from __future__ import annotations

from itertools import pairwise

from dashboard_client import Client, serving

from eventstore.store import Store
from eventstore.timeutil import from_iso
from tests.dashboard_seed import seed


def test_overview_counts_match_store(store: Store) -> None:
    seeded = seed(store)
    with serving(store) as served:
        reply = Client(served.port).get("/api/overview", since="24h")
    assert reply.status == 200
    data = reply.json()
    assert data["open_alerts"] == seeded["alerts"] == store.count("ztsoc.alert.status:open", index="alerts")
    assert data["open_by_level"] == {"informational": 0, "low": 1, "medium": 3, "high": 2, "critical": 1}
    assert {r["dataset"]: r["events"] for r in data["collection"]} == {
        "network.flow": 30, "network.dns": 30, "network.tls": 30, "policy.decision": 30, "policy.change": 1}
    assert sum(r["count"] for r in data["alerts_over_time"]) == seeded["alerts"]
    # one point per bucket, a quiet one as 0 (issue 16: the chart dropped empty buckets)
    stamps = [from_iso(r["t"]).timestamp() for r in data["alerts_over_time"]]
    steps = {b - a for a, b in pairwise(stamps)}
    assert len(steps) == 1 and len(stamps) >= 24 and 0 in {r["count"] for r in data["alerts_over_time"]}
    assert data["top_entities"][0]["entity"] in ("10.20.1.1", "10.20.1.2")


def test_network_and_identity_pages(store: Store) -> None:
    seed(store)
    with serving(store) as served:
        client = Client(served.port)
        net = client.get("/api/network", since="24h").json()
        ident = client.get("/api/identity", since="24h").json()
    assert [t["ip"] for t in net["top_talkers"]][:1] == ["10.20.1.3"]  # 10 flows x 3000 bytes
    assert net["odd_domains"] == [{"domain": "exfil-cdn.example", "names": 30}]
    assert net["tls_sni"] == [{"server_name": "portal.gov.example", "count": 30}]
    assert [c["actor"] for c in ident["policy_changes"]] == ["jorge.silva"]
    assert ident["top_denied"] == [{"principal": "spiffe://gov.example/ns/portal/sa/web", "service": "records",
                                    "count": 10}]


def test_alert_filters_detail_and_close(store: Store) -> None:
    seed(store)
    with serving(store, local_actor="tester") as served:
        client = Client(served.port)
        assert client.get("/api/alerts", level="medium").json()["total"] == 3
        detail = client.get("/api/alerts/alert-0").json()
        assert [e["event.id"] for e in detail["evidence"]] == ["flow-0"]
        csrf = client.session()["csrf"]
        # a client header naming someone else changes nothing: the actor is the server's local user
        response = client.post("/api/alerts/alert-0/close", {"reason": "true_positive", "note": "contained"},
                               csrf=csrf, headers={"X-Analyst": "ana"})
        assert response.status == 200, response.body
        alert = store.get_alert("alert-0")
        assert alert is not None and alert["ztsoc.alert.status"] == "closed"
        assert alert["ztsoc.alert.history"][-1]["actor"] == "tester"
        again = client.post("/api/alerts/alert-0/close", {"reason": "benign"}, csrf=csrf)
        assert again.status == 409  # a closed alert cannot be closed again
        bad = client.post("/api/alerts/alert-1/close", {"reason": "because"}, csrf=csrf)
        assert bad.status == 409 and b"true_positive" in bad.body
        assert client.post("/api/alerts/alert-1/ack", b"[1, 2]", csrf=csrf).status == 400
        assert client.post("/api/alerts/alert-1/ack", b"{nope", csrf=csrf).status == 400
        assert client.post("/api/alerts/alert-1/note", {"note": "x" * 70_000}, csrf=csrf).status == 413
        assert client.get("/api/alerts/nope").status == 404
        assert client.get("/api/nosuchview").status == 404


def test_bad_query_is_a_400_with_the_reason(sqlite_store: Store) -> None:
    with serving(sqlite_store) as served:
        reply = Client(served.port).get("/api/alerts", q="rule.name:(unclosed")
    assert reply.status == 400 and "bad query" in reply.json()["error"]
