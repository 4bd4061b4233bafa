"""The runner across stops and restarts: every alert once, late events caught, downtime caught up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detections.runner import CURSOR_KIND, load_compiled, run_detections
from detections.sigma.loader import load_rules
from detections.sigma.samples import expand
from eventstore import open_store
from eventstore.timeutil import from_iso

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def compiled():
    return load_compiled()


def _all_samples() -> list[dict]:
    """The match samples of every shipped rule: a month of incidents, 10 alerts."""
    events: list[dict] = []
    for r in load_rules().rules:
        events += expand(r.meta.samples.get("match") or [], prefix=f"{r.key}-m")
    return sorted(events, key=lambda d: d["@timestamp"])


def _alerts(store) -> dict[str, dict]:
    return {a["event.id"]: a for a in store.scan("*", index="alerts")}


def test_single_pass_vs_restarts_give_the_same_alerts(tmp_path, compiled) -> None:
    events = _all_samples()
    end = datetime.fromisoformat(events[-1]["@timestamp"].replace("Z", "+00:00")) + timedelta(minutes=1)

    once = open_store(f"sqlite:///{tmp_path / 'once.db'}")
    once.write_events(events)
    report = run_detections(once, since=T0, until=end, compiled=compiled)
    expected = _alerts(once)
    assert report.alerts_new == len(expected) == 10

    split = open_store(f"sqlite:///{tmp_path / 'split.db'}")
    # the runner is stopped and restarted every 3 hours of event time, and events arrive in those batches
    cut = T0
    new = 0
    while cut < end:
        nxt = cut + timedelta(hours=3)
        split.write_events([e for e in events if cut.isoformat() <= e["@timestamp"].replace("Z", "+00:00") < nxt.isoformat()])
        report = run_detections(split, since=T0, until=min(nxt, end), compiled=compiled)
        new += report.alerts_new
        cut = nxt
    got = _alerts(split)
    assert new == len(expected)
    assert sorted(got) == sorted(expected)
    for aid, alert in expected.items():
        assert sorted(got[aid]["ztsoc.alert.evidence"]) == sorted(alert["ztsoc.alert.evidence"])
        assert got[aid]["ztsoc.alert.first_seen"] == alert["ztsoc.alert.first_seen"]


def test_burst_straddling_two_runs_is_one_alert(tmp_path, compiled) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    rule = load_rules().find("port_scan")
    flows = expand(rule.meta.samples["match"], prefix="scan")  # 60 flows over 6 s
    middle = datetime.fromisoformat(flows[30]["@timestamp"].replace("Z", "+00:00"))
    store.write_events(flows[:30])
    first = run_detections(store, since=T0, until=middle, compiled=compiled)
    assert first.alerts == 0  # 30 distinct ports: below the threshold
    store.write_events(flows[30:])
    second = run_detections(store, since=T0, until=middle + timedelta(minutes=5), compiled=compiled)
    assert second.alerts_new == 1
    [alert] = _alerts(store).values()
    assert alert["ztsoc.alert.evidence_count"] == 60


def test_late_event_within_lookback_is_found_and_rerun_repeats_nothing(tmp_path, compiled) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'l.db'}")
    rule = load_rules().find("sudo_off_hours")
    [late] = expand(rule.meta.samples["match"], prefix="late")
    ts = datetime.fromisoformat(late["@timestamp"].replace("Z", "+00:00"))
    assert run_detections(store, since=ts - timedelta(hours=1), until=ts + timedelta(minutes=2), compiled=compiled).alerts == 0
    store.write_events([late])  # arrives after the run that covered its time
    again = run_detections(store, until=ts + timedelta(minutes=4), compiled=compiled, lookback=timedelta(minutes=5))
    assert again.alerts_new == 1
    third = run_detections(store, until=ts + timedelta(minutes=5), compiled=compiled, lookback=timedelta(minutes=5))
    assert third.alerts_new == 0 and third.alerts_updated == 1  # re-read in the look-back: same alert
    assert store.count(index="alerts") == 1


def test_catch_up_after_downtime_and_cursors(tmp_path, compiled) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    events = _all_samples()
    run_detections(store, since=T0 - timedelta(days=1), until=T0, compiled=compiled)
    assert store.get_state(CURSOR_KIND, "port_scan") == {"until": "2026-03-01T00:00:00.000Z"}
    store.write_events(events)  # a month of events while the runner was down
    end = datetime.fromisoformat(events[-1]["@timestamp"].replace("Z", "+00:00")) + timedelta(minutes=1)
    report = run_detections(store, until=end, compiled=compiled)
    assert report.alerts_new == 10
    assert report.events == len([e for e in events if e["@timestamp"] >= "2026-02-28T23:45"])


def test_analyst_lifecycle_survives_a_rerun(tmp_path, compiled) -> None:
    from eventstore import AlertChange

    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    events = _all_samples()
    end = datetime.fromisoformat(events[-1]["@timestamp"].replace("Z", "+00:00")) + timedelta(minutes=1)
    store.write_events(events)
    run_detections(store, since=T0, until=end, compiled=compiled)
    aid = next(iter(_alerts(store)))
    store.update_alert(aid, AlertChange("analyst", "acknowledge", {"ztsoc.alert.status": "acknowledged"}))
    run_detections(store, since=T0, until=end, compiled=compiled, reset=True)
    assert store.get_alert(aid)["ztsoc.alert.status"] == "acknowledged"
    assert store.count(index="alerts") == 10


def test_watch_runs_on_schedule_and_continues_from_cursors(tmp_path) -> None:
    from detections.runner import watch

    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    reports = []
    slept: list[float] = []
    runs = watch(store, timedelta(seconds=60), iterations=3, on_report=reports.append, sleep=slept.append)
    assert runs == 3 and len(reports) == 3 and len(slept) == 2
    assert all(0 <= s <= 60 for s in slept)
    cursor = store.get_state(CURSOR_KIND, "port_scan")
    assert cursor is not None and cursor["until"] == reports[-1].until


def test_a_rule_added_later_starts_from_since_while_others_keep_their_cursor(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'n.db'}")
    events = _all_samples()
    end = datetime.fromisoformat(events[-1]["@timestamp"].replace("Z", "+00:00")) + timedelta(minutes=1)
    store.write_events(events)
    first = run_detections(store, since=T0, until=end, compiled=load_compiled())
    assert first.alerts_new == 10
    extra = tmp_path / "mine"
    extra.mkdir()
    (extra / "root_logins.yml").write_text("""
title: Any SSH login failure for root
name: root_ssh_failure
id: 6a0b2c1d-0000-4000-8000-0000000000aa
logsource: {product: linux, service: sshd}
detection:
  sel: {event.action: ssh_login, event.outcome: failure, user.name: root}
  condition: sel
level: low
tags: [attack.credential-access, attack.t1110]
""")
    second = run_detections(store, since=T0, until=end + timedelta(minutes=1), rules_dirs=[extra])
    assert second.per_rule == {"root_ssh_failure": 1}  # the new rule saw the whole history...
    assert second.alerts_new == 1 and second.alerts_updated == 0  # ...the others only their look-back
    assert store.get_state(CURSOR_KIND, "root_ssh_failure") is not None


def test_a_scan_ingested_right_after_the_demo_is_detected(tmp_path, compiled) -> None:
    """The demo evaluates up to the end of its day plus an hour (in the future): its cursors stop at now."""
    from eventstore.timeutil import to_iso, utcnow
    from playbooks.demo import DemoContext, stage_detect

    store = open_store(f"sqlite:///{tmp_path / 'd.db'}")
    end = utcnow().replace(minute=0, second=0, microsecond=0)
    store.write_events(_all_samples()[:5])  # a little history; the demo's own detection step over it
    stage_detect(DemoContext(store, tmp_path, seed=7, flows=0, end=end, incidents=()))
    cursor = from_iso(store.get_state(CURSOR_KIND, "port_scan")["until"])
    assert cursor <= utcnow()
    # a port scan ingested right after the demo, stamped now: the next plain `soc detect run` alerts
    start = utcnow()
    flows = expand(load_rules().find("port_scan").meta.samples["match"], prefix="after-demo")
    base = from_iso(flows[0]["@timestamp"])
    for f in flows:
        f["@timestamp"] = to_iso(start + (from_iso(f["@timestamp"]) - base))
    store.write_events(flows)
    report = run_detections(store, until=start + timedelta(minutes=1), compiled=compiled)
    assert report.per_rule.get("port_scan") == 1
    [alert] = [a for a in _alerts(store).values() if a["rule.id"] == "port_scan"]
    assert alert["ztsoc.alert.evidence_count"] == 60
