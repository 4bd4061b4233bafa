"""Alert exceptions over both stores: saving, matching new alerts, expiry, the impact preview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alertseed import T0, alert

from detections import exceptions as ex
from detections.queue import AlertFilter, list_queue
from eventstore import Store
from eventstore.errors import QuerySyntaxError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _save(store: Store, query: str, *, expires: datetime, created: datetime = NOW) -> ex.AlertException:
    exc = ex.new_exception(query, owner="net-team", reason="vulnerability scanner", expires=expires,
                           created_by="maria", now=created)
    ex.save(store, exc)
    return exc


def test_parse_expiry() -> None:
    assert ex.parse_expiry("30d", NOW) == NOW + timedelta(days=30)
    assert ex.parse_expiry("2027-01-01", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="in the past"):
        ex.parse_expiry("2020-01-01", NOW)
    with pytest.raises(ValueError, match="--expires: not a duration or time"):
        ex.parse_expiry("soon", NOW)


def test_new_exception_refuses_a_blanket_or_ownerless_exception() -> None:
    with pytest.raises(ValueError, match="narrower than"):
        ex.new_exception("*", owner="a", reason="b", expires=NOW, created_by="x")
    with pytest.raises(ValueError, match="--owner"):
        ex.new_exception("rule.id:x", owner=" ", reason="b", expires=NOW, created_by="x")


def test_apply_marks_matches_and_keeps_everything(store: Store) -> None:
    scanner = _save(store, 'rule.id:port_scan AND source.ip:"10.0.0.8"', expires=NOW + timedelta(days=30))
    new = [alert("n1", rule="port_scan", entity="10.0.0.8"), alert("n2", rule="port_scan", entity="10.0.0.9"),
           alert("n3", entity="10.0.0.8")]
    out = ex.apply_exceptions(store, new, now=NOW)
    assert [a["event.id"] for a in out] == ["n1", "n2", "n3"]
    assert out[0][ex.SUPPRESSED] is True
    assert out[0][ex.EXCEPTION_ID] == scanner.id
    assert ex.SUPPRESSED not in out[1]
    assert ex.SUPPRESSED not in out[2]
    store.put_alerts(out)
    assert store.count("*", index="alerts") == 3  # suppressed, still stored
    queue = list_queue(store, AlertFilter())
    assert {a["event.id"] for a in queue.alerts} == {"n2", "n3"}
    assert list_queue(store, AlertFilter(include_suppressed=True)).total == 3


def test_expired_exceptions_stop(store: Store) -> None:
    _save(store, "rule.id:port_scan", expires=NOW - timedelta(minutes=1), created=NOW - timedelta(days=31))
    out = ex.apply_exceptions(store, [alert("n1", rule="port_scan")], now=NOW)
    assert ex.SUPPRESSED not in out[0]
    assert ex.active_exceptions(store, NOW) == []
    assert len(ex.list_exceptions(store)) == 1


def test_oldest_matching_exception_wins_and_delete(store: Store) -> None:
    first = _save(store, "rule.id:port_scan", expires=NOW + timedelta(days=1), created=NOW - timedelta(hours=2))
    second = _save(store, 'source.ip:"10.0.0.8"', expires=NOW + timedelta(days=1), created=NOW - timedelta(hours=1))
    out = ex.apply_exceptions(store, [alert("n1", rule="port_scan", entity="10.0.0.8")], now=NOW)
    assert out[0][ex.EXCEPTION_ID] == first.id
    ex.delete(store, first.id)
    out = ex.apply_exceptions(store, [alert("n1", rule="port_scan", entity="10.0.0.8")], now=NOW)
    assert out[0][ex.EXCEPTION_ID] == second.id
    with pytest.raises(ValueError, match="no exception"):
        ex.delete(store, first.id)


def test_bad_query_is_refused_before_saving(store: Store) -> None:
    bad = ex.new_exception("rule.id:(port_scan", owner="a", reason="b", expires=NOW + timedelta(days=1),
                           created_by="x")
    with pytest.raises(QuerySyntaxError):
        ex.save(store, bad)
    assert ex.list_exceptions(store) == []


def test_impact_counts_past_alerts(store: Store) -> None:
    store.put_alerts([alert(f"old{i}", rule="port_scan", entity="10.0.0.8", at=T0 + timedelta(hours=i))
                      for i in range(6)] + [alert("ssh", entity="10.0.0.8")])
    store.put_alerts([alert("ancient", rule="port_scan", entity="10.0.0.8", at=T0 - timedelta(days=60))])
    from detections.lifecycle import close

    close(store, "old0", "benign", actor="x")
    imp = ex.impact(store, "rule.id:port_scan", since=T0 - timedelta(days=1))
    assert imp.total == 6
    assert imp.open == 5
    assert imp.by_rule == [{"rule.name": "Port scan", "count": 6}]
    assert len(imp.sample) == 6
    assert ex.impact(store, "rule.id:port_scan", since=None).total == 7


def test_a_broken_exception_is_skipped_not_fatal(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    good = _save(store, "rule.id:port_scan", expires=NOW + timedelta(days=1))
    broken = ex.new_exception("rule.id:port_scan", owner="a", reason="b", expires=NOW + timedelta(days=1),
                              created_by="x", now=NOW - timedelta(days=1))
    store.put_state(ex.STATE_KIND, broken.id, {**broken.to_doc(), "query": "rule.id:(port_scan"})
    out = ex.apply_exceptions(store, [alert("n1", rule="port_scan")], now=NOW)
    assert out[0][ex.EXCEPTION_ID] == good.id
    assert f"exception {broken.id} skipped" in caplog.text


def test_the_detection_runner_marks_future_alerts(store: Store) -> None:
    """End to end: an exception saved by an analyst, then the real runner on the port-scan rule's sample."""
    from detections.runner import load_compiled, run_detections
    from detections.sigma.loader import load_rules
    from detections.sigma.samples import expand

    rule = load_rules().find("port_scan")
    flows = expand(rule.meta.samples["match"], prefix="scan")
    store.write_events(flows)
    first = datetime.fromisoformat(flows[0]["@timestamp"].replace("Z", "+00:00"))
    source = flows[0]["source.ip"]
    created = ex.new_exception(f'rule.id:port_scan AND source.ip:"{source}"', owner="net-team", reason="lab scanner",
                               expires=ex.parse_expiry("30d"), created_by="maria")
    ex.save(store, created)
    report = run_detections(store, since=first - timedelta(hours=1), until=first + timedelta(minutes=10),
                            compiled=load_compiled())
    assert report.alerts_new == 1
    [stored] = store.search("rule.id:port_scan", index="alerts").hits
    assert stored[ex.SUPPRESSED] is True
    assert stored[ex.EXCEPTION_ID] == created.id
    assert list_queue(store, AlertFilter(rule="port_scan")).total == 0
    assert list_queue(store, AlertFilter(rule="port_scan", include_suppressed=True)).total == 1
