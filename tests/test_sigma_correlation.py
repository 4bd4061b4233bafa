"""Sigma v2 correlations over sliding windows: straddling bursts, distinct values, order, chains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detections.sigma.engine import compile_ruleset, evaluate
from detections.sigma.loader import load_rules

BASE = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

RULES = """
title: failed
name: failed
id: 0f0f0f0f-0000-4000-8000-000000000001
logsource: {product: ztsoc, service: auth}
detection:
  sel: {event.outcome: failure}
  condition: sel
---
title: ok
name: ok
id: 0f0f0f0f-0000-4000-8000-000000000002
logsource: {product: ztsoc, service: auth}
detection:
  sel: {event.outcome: success}
  condition: sel
---
title: burst
name: burst
id: 0f0f0f0f-0000-4000-8000-000000000003
correlation: {type: event_count, rules: [failed], group-by: [source.ip], timespan: 1m, condition: {gte: 5}}
---
title: many users
name: many_users
id: 0f0f0f0f-0000-4000-8000-000000000004
correlation: {type: value_count, rules: [failed], group-by: [source.ip], timespan: 10m, condition: {gte: 3, field: user.name}}
---
title: burst then ok
name: burst_then_ok
id: 0f0f0f0f-0000-4000-8000-000000000005
correlation: {type: temporal_ordered, rules: [burst, ok], group-by: [source.ip], timespan: 5m}
---
title: both
name: both
id: 0f0f0f0f-0000-4000-8000-000000000006
correlation: {type: temporal, rules: [failed, ok], group-by: [user.name], timespan: 1m}
"""


def _cs(tmp_path):
    (tmp_path / "r.yml").write_text(RULES)
    rs = load_rules([tmp_path], shipped=False)
    assert not rs.problems
    return compile_ruleset(rs)


def _ev(n: int, seconds: float, outcome: str, ip: str = "203.0.113.9", user: str = "root") -> dict:
    return {"event.id": f"e{n}", "@timestamp": (BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
            "event.dataset": "system.auth", "event.outcome": outcome, "source.ip": ip, "user.name": user}


def _by_rule(cs, events) -> dict[str, list[dict]]:
    alerts, _ = evaluate(cs, events)
    out: dict[str, list[dict]] = {}
    for a in alerts:
        out.setdefault(a["rule.id"], []).append(a)
    return out


def test_burst_straddling_a_minute_boundary_is_counted(tmp_path) -> None:
    # 5 failures within 20 s, but 10:00:50..10:01:10: clock buckets of 1 m see 3 + 2
    events = [_ev(i, 50 + i * 5, "failure") for i in range(5)]
    alerts = _by_rule(_cs(tmp_path), events)
    assert "burst" not in alerts
    cs = _cs(tmp_path)
    from detections.alerts import AlertBook
    from detections.sigma.engine import Evaluation

    ev = Evaluation(cs, AlertBook(None)).run(events)
    assert ev.stats.firings["burst"] == 1


def test_spread_out_failures_do_not_count(tmp_path) -> None:
    events = [_ev(i, i * 20, "failure") for i in range(10)]  # one every 20 s: at most 3 per minute
    from detections.alerts import AlertBook
    from detections.sigma.engine import Evaluation

    ev = Evaluation(_cs(tmp_path), AlertBook(None)).run(events)
    assert ev.stats.firings["burst"] == 0


def test_value_count_counts_distinct_values(tmp_path) -> None:
    cs = _cs(tmp_path)
    same_user = [_ev(i, i, "failure", user="root") for i in range(20)]
    assert "many_users" not in _by_rule(cs, same_user)
    three = [_ev(i, i, "failure", user=f"u{i % 3}") for i in range(6)]
    alerts = _by_rule(cs, three)["many_users"]
    assert len(alerts) == 1
    assert alerts[0]["source.ip"] == "203.0.113.9"
    assert alerts[0]["ztsoc.alert.score"] == 3


def test_temporal_ordered_needs_the_order(tmp_path) -> None:
    cs = _cs(tmp_path)
    burst_then_ok = [_ev(i, i, "failure") for i in range(6)] + [_ev(99, 30, "success", user="amina")]
    alerts = _by_rule(cs, burst_then_ok)["burst_then_ok"]
    assert len(alerts) == 1
    assert alerts[0]["ztsoc.alert.evidence_count"] == 7
    ok_then_burst = [_ev(99, 0, "success", user="amina")] + [_ev(i, 10 + i, "failure") for i in range(6)]
    assert "burst_then_ok" not in _by_rule(cs, ok_then_burst)
    other_source = [_ev(i, i, "failure") for i in range(6)] + [_ev(99, 30, "success", ip="10.0.0.1")]
    assert "burst_then_ok" not in _by_rule(cs, other_source)


def test_temporal_any_order_within_timespan(tmp_path) -> None:
    cs = _cs(tmp_path)
    assert len(_by_rule(cs, [_ev(1, 0, "success", user="bob"), _ev(2, 30, "failure", user="bob")])["both"]) == 1
    assert "both" not in _by_rule(cs, [_ev(1, 0, "success", user="bob"), _ev(2, 90, "failure", user="bob")])


def test_a_long_burst_is_one_alert_with_all_evidence(tmp_path) -> None:
    cs = _cs(tmp_path)
    events = [_ev(i, i * 0.5, "failure", user=f"u{i}") for i in range(400)]
    alerts = _by_rule(cs, events)["many_users"]
    assert len(alerts) == 1
    assert alerts[0]["ztsoc.alert.evidence_count"] == 400
