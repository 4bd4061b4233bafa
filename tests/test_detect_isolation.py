"""A run never dies of one rule: a failing rule is reported with its reason, the other rules
raise their alerts and move their cursors, and the failed rule is retried by the next run.

Both stores; the failures are real: on Elasticsearch a query the node refuses (a number
compared with an ``ip`` field), on either store a rule whose compiled predicate raises on an
event (the predicate is wrapped to raise once, standing for any bug in one rule).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detections.runner import CURSOR_KIND, load_compiled, run_detections
from detections.sigma import es_eval
from detections.sigma.engine import CompiledSet
from eventstore.store import Store
from eventstore.timeutil import to_iso

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
END = T0 + timedelta(hours=1)

_RULE = """title: {title}
name: {name}
id: {uuid}
status: test
logsource: {{product: windows, service: {service}}}
detection:
    selection:
{selection}
    condition: selection
level: medium
"""


def _rules(tmp_path: Path, service: str = "security", **selections: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    for n, (name, selection) in enumerate(selections.items()):
        (folder / f"{name}.yml").write_text(_RULE.format(
            title=name.replace("_", " "), name=name, uuid=f"00000000-0000-4000-{abs(hash(service)) % 9999:04d}-{n:012d}",
            selection=selection, service=service))
    return folder


def _events() -> list[dict[str, object]]:
    return [{"@timestamp": to_iso(T0 + timedelta(minutes=i)), "event.id": f"e{i}", "event.dataset": "windows.security",
             "winlog.channel": "Security", "event.code": code, "host.name": "ws-01",
             "winlog.event_data.TargetUserName": "Administrator"}
            for i, code in enumerate(["4625", "4625", "4720", "4720"])]


def _cursor(store: Store, key: str) -> str | None:
    doc = store.get_state(CURSOR_KIND, key)
    return str(doc["until"]) if doc else None


def test_a_rule_that_raises_fails_alone_and_is_retried(store: Store, tmp_path: Path) -> None:
    folder = _rules(tmp_path, failed_logon="        EventID: 4625",
                    account_created="        EventID: 4720\n        TargetUserName|endswith: 'istrator'")
    cs: CompiledSet = load_compiled([folder], shipped=False)
    store.write_events(_events())
    broken = next(cr for cr in cs.base if cr.key == "account_created")
    healthy = broken.predicate

    def raising(ev: object) -> bool:
        raise RuntimeError("a bug in this one rule")

    broken.predicate = raising
    first = run_detections(store, since=T0, until=END, compiled=cs)
    assert set(first.failed) == {"account_created"}
    assert "RuntimeError: a bug in this one rule" in first.failed["account_created"]
    assert first.per_rule == {"failed_logon": 1}  # the other rule raised its alert
    assert _cursor(store, "failed_logon") is not None
    assert _cursor(store, "account_created") is None  # not moved: retried next run

    broken.predicate = healthy
    second = run_detections(store, since=T0, until=END, compiled=cs)
    assert second.failed == {}
    assert second.per_rule == {"account_created": 1}  # found on the retry; failed_logon's alert not repeated
    assert second.alerts_new == 1
    assert _cursor(store, "account_created") is not None


@pytest.mark.es
def test_one_refused_search_in_an_msearch_fails_alone(es_store: Store) -> None:
    from eventstore.es_store import ElasticsearchStore, PageRequest

    assert isinstance(es_store, ElasticsearchStore)
    es_store.write_events(_events())
    good = {"term": {"event.code": "4625"}}
    refused = {"regexp": {"user.name": {"value": "a" * 1100}}}  # longer than index.max_regex_length (1000)
    pages = es_store.event_pages([PageRequest(good), PageRequest(refused), PageRequest(good)],
                                 since=T0, until=END, size=1)
    assert [[d["event.id"] for d in p.hits] for p in pages] == [["e0"], [], ["e0"]]
    assert pages[1].refused and pages[1].error is not None and "1000" in pages[1].error
    assert pages[0].after is not None and pages[0].error is None  # a full page: more may follow
    more = es_store.event_pages([PageRequest(good, pages[0].after)], since=T0, until=END, size=1)
    assert [d["event.id"] for d in more[0].hits] == ["e1"]


def test_rules_take_the_cluster_or_the_stream_by_the_cost_of_their_query(tmp_path: Path) -> None:
    folder = _rules(tmp_path, failed_logon="        EventID: 4625",
                    admin_suffix="        EventID: 4720\n        TargetUserName|endswith: 'istrator'")
    _rules(tmp_path, "system", service_installed="        EventID: 7045")
    p = es_eval.plan(load_compiled([folder], shipped=False))
    assert set(p.in_cluster) == {"service_installed"}  # exact terms on a channel nothing else reads: _msearch
    # a leading wildcard: the embedded matcher over the stream; and the rule on a channel streamed anyway
    assert sorted(cr.key for cr in p.streamed) == ["admin_suffix", "failed_logon"]
    assert p.prefilter is not None and "4720" in str(p.prefilter) and "7045" not in str(p.prefilter)


def test_a_failed_input_rule_holds_back_its_correlation(store: Store, tmp_path: Path) -> None:
    folder = _rules(tmp_path, failed_logon="        EventID: 4625")
    (folder / "burst.yml").write_text("""title: burst
name: burst
id: 00000000-0000-4000-8000-0000000000ff
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [host.name]
    timespan: 10m
    condition: {gte: 2}
level: high
""")
    cs = load_compiled([folder], shipped=False)
    store.write_events(_events())
    base = next(cr for cr in cs.base if cr.key == "failed_logon")

    def raising(ev: object) -> bool:
        raise ValueError("odd value")

    base.predicate = raising
    report = run_detections(store, since=T0, until=END, compiled=cs)
    assert report.failed == {"burst": "input rule failed_logon failed",
                             "failed_logon": report.failed["failed_logon"]}
    assert report.alerts == 0 and _cursor(store, "burst") is None
