"""Entity timelines over both stores: every dataset, the right fields per kind, time order, evidence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alertseed import T0, alert, auth, decision, dns, flow

from detections import timeline
from detections.risk import entity_risk
from eventstore import Store

ATTACKER = "203.0.113.7"
SPIFFE = "spiffe://prov.gov/ns/billing/sa/api"


def _seed(store: Store) -> None:
    m = lambda n: T0 + timedelta(minutes=n)  # noqa: E731
    store.write_events([
        dns("e-dns", m(-30), ATTACKER, "mail.prov.gov"),
        flow("e-flow1", m(-20), ATTACKER, "10.0.0.10"),
        auth("e-auth1", m(-10), "root", ATTACKER),
        auth("e-auth2", m(-9), "root", ATTACKER),
        auth("e-auth3", m(-1), "alice", ATTACKER, outcome="success"),
        flow("e-flow2", m(5), "10.0.0.10", ATTACKER, dport=4444),
        auth("e-alice-elsewhere", m(20), "alice", "10.0.0.77", outcome="success", host="files01"),
        flow("e-unrelated", m(0), "10.0.0.3", "10.0.0.4"),
        decision("e-pol1", m(-2), SPIFFE, "records"),
        decision("e-pol2", m(3), SPIFFE, "records", action="allow"),
        flow("e-far", m(-600), ATTACKER, "10.0.0.10"),
    ])
    store.put_alerts([alert("al1", entity=ATTACKER, at=m(-1), evidence=["e-auth1", "e-auth2", "e-auth3"])])


def test_guess_kinds() -> None:
    assert [k.name for k in timeline.guess_kinds("10.1.2.3")] == ["ip"]
    assert [k.name for k in timeline.guess_kinds("2001:db8::1")] == ["ip"]
    assert [k.name for k in timeline.guess_kinds(SPIFFE)] == ["service"]
    assert [k.name for k in timeline.guess_kinds("PROV\\alice")] == ["user"]
    assert [k.name for k in timeline.guess_kinds("alice")] == ["user", "host"]
    assert [k.name for k in timeline.guess_kinds("web01.prov.gov")] == ["host", "user"]
    with pytest.raises(ValueError, match="unknown entity kind"):
        timeline.kind_named("planet")
    assert "source.ip" not in timeline.entity_query("alice", [timeline.KINDS["user"], timeline.KINDS["ip"]])
    with pytest.raises(ValueError, match="cannot be searched as ip"):
        timeline.entity_query("not-an-address", [timeline.KINDS["ip"]])


def test_ip_timeline_across_datasets_in_order(store: Store) -> None:
    _seed(store)
    tl = timeline.entity_timeline(store, ATTACKER, since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1),
                                  follow_links=False)
    ids = [e["event.id"] for e in tl.entries]
    assert ids == ["e-dns", "e-flow1", "e-auth1", "e-auth2", "e-auth3", "al1", "e-flow2"]
    assert tl.datasets == {"system.auth": 3, "network.flow": 2, "network.dns": 1}
    assert tl.total_events == 6
    stamps = [e["@timestamp"] for e in tl.entries]
    assert stamps == sorted(stamps)
    rows = tl.rows()
    assert rows[0]["summary"] == f"{ATTACKER} asks mail.prov.gov A"
    assert rows[2]["summary"] == f"ssh_login failure user=root from={ATTACKER} on=web01"
    assert rows[5]["summary"].startswith("ALERT [high]")


def test_user_and_service_timelines(store: Store) -> None:
    _seed(store)
    tl = timeline.entity_timeline(store, "alice", kinds=[timeline.KINDS["user"]])
    assert [e["event.id"] for e in tl.entries] == ["e-auth3", "e-alice-elsewhere"]
    tl = timeline.entity_timeline(store, SPIFFE)
    assert [e["event.id"] for e in tl.entries] == ["e-pol1", "e-pol2"]
    assert tl.rows()[0]["summary"] == f"deny {SPIFFE} -> records GET /api/v1/records"
    tl = timeline.entity_timeline(store, "files01")  # a bare name: searched as user and host
    assert [e["event.id"] for e in tl.entries] == ["e-alice-elsewhere"]
    tl = timeline.entity_timeline(store, ATTACKER, datasets=["network.flow"], include_alerts=False)
    assert [e["event.id"] for e in tl.entries] == ["e-far", "e-flow1", "e-flow2"]


def test_alert_timeline_window_and_evidence(store: Store) -> None:
    _seed(store)
    al = store.get_alert("al1")
    assert al is not None
    tl = timeline.alert_timeline(store, al, before=timedelta(minutes=10), after=timedelta(minutes=10))
    ids = [e["event.id"] for e in tl.entries]
    # first_seen is 5 minutes before the alert (T0-6m): the window opens at T0-16m
    assert ids == ["e-auth1", "e-auth2", "e-auth3", "al1", "e-flow2"]
    marked = [r["event.id"] for r in tl.rows() if r["evidence"]]
    assert marked == ["e-auth1", "e-auth2", "e-auth3"]


def test_newest_kept_when_truncated(store: Store) -> None:
    _seed(store)
    tl = timeline.entity_timeline(store, ATTACKER, limit=2, include_alerts=False, follow_links=False)
    assert [e["event.id"] for e in tl.entries] == ["e-auth3", "e-flow2"]
    assert tl.truncated


def test_risk_of_an_entity(store: Store) -> None:
    now = T0 + timedelta(hours=1)
    store.put_alerts([
        alert("r1", entity="10.9.9.9", level="critical", at=now),
        alert("r2", entity="10.9.9.9", level="high", at=now - timedelta(hours=24)),
        alert("r3", entity="10.9.9.9", level="high", at=now, fields={"ztsoc.alert.suppressed": True}),
        alert("r4", entity="10.1.1.1", level="low", at=now),
    ])
    risk = entity_risk(store, "10.9.9.9", now=now)
    assert risk.alerts == 2
    assert risk.score == 100.0  # 80 + 40 * 0.5, capped
    assert risk.band == "critical"
    from detections.lifecycle import close

    close(store, "r1", "true_positive", actor="x")
    risk = entity_risk(store, "10.9.9.9", now=now)
    assert risk.score == 20.0
    assert risk.band == "low"
    assert entity_risk(store, "10.2.2.2", now=now).band == "none"


def test_ip_timeline_follows_the_accounts_it_logged_in_as(store: Store) -> None:
    """The address logged in as alice: what alice did afterwards is in its timeline, labelled by the link."""
    _seed(store)
    tl = timeline.entity_timeline(store, ATTACKER, since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1))
    ids = [e["event.id"] for e in tl.entries]
    assert ids == ["e-dns", "e-flow1", "e-auth1", "e-auth2", "e-auth3", "al1", "e-flow2", "e-alice-elsewhere"]
    row = tl.rows()[-1]
    assert row["link"] == f"alice (logged in from {ATTACKER})"
    assert row["summary"].startswith(f"[via alice (logged in from {ATTACKER})] ssh_login success user=alice")
    # root only failed: nothing of root's is followed
    assert all(r["link"] in (None, f"alice (logged in from {ATTACKER})") for r in tl.rows())


def test_http_and_tls_rows_say_what_was_asked() -> None:
    http_row = {"event.dataset": "network.http", "source.ip": "10.0.0.3", "http.request.method": "GET",
                "url.domain": "portal.gov.example", "url.original": "/admin/x?y=1", "http.response.status_code": 403,
                "user_agent.original": "curl/8.0"}
    assert timeline.summarize(http_row) == "10.0.0.3 GET portal.gov.example/admin/x?y=1 -> 403 (curl/8.0)"
    tls_row = {"event.dataset": "network.tls", "source.ip": "10.0.0.3", "source.port": 5000,
               "destination.ip": "10.0.0.9", "destination.port": 443, "tls.version": "1.3",
               "tls.client.server_name": "idp.gov.example"}
    assert timeline.summarize(tls_row) == "10.0.0.3:5000 -> 10.0.0.9:443 TLS 1.3 idp.gov.example"
    dns_row = {"event.dataset": "network.dns", "source.ip": "10.0.0.3", "dns.question.name": "x.example",
               "dns.question.type": "A", "dns.response_code": "NOERROR", "dns.resolved_ip": ["192.0.2.1"]}
    assert timeline.summarize(dns_row) == "10.0.0.3 asks x.example A -> NOERROR [192.0.2.1]"
