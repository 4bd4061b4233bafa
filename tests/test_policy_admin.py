"""Admin tools: lint findings, test cases, explain, diff, and what-if over logged decisions."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventstore import Store
from policy.admin.diff import diff_paths
from policy.admin.explain import explain_request
from policy.admin.lint import lint
from policy.admin.testcases import run_cases
from policy.admin.whatif import whatif
from policy.decision_log import DecisionLog
from policy.engine import Engine
from policy.request import Request, Risk
from policy.risk import StaticRisk

EXAMPLES = Path(__file__).resolve().parents[1] / "policy" / "examples"
HEAD = "apiVersion: ztsoc/v1\nkind: Policy\nname: t\nrules:\n"


def _policy(tmp_path: Path, body: str, name: str = "p.yaml") -> Path:
    f = tmp_path / name
    f.write_text(HEAD + body)
    return f


def test_examples_pass_their_cases_and_lint_clean() -> None:
    results, issues = run_cases(EXAMPLES / "tests.yaml")
    assert issues == [] and len(results) >= 20
    assert all(r.passed for r in results), [r.to_dict() for r in results if not r.passed]
    assert lint([EXAMPLES]) == []


def test_failing_case_reports_expected_and_got(tmp_path: Path) -> None:
    _policy(tmp_path, "  - name: a\n    effect: allow\n    destination: {services: [s], methods: [GET]}\n")
    (tmp_path / "cases.yaml").write_text(
        "cases:\n"
        "  - name: get\n    request: {service: s, method: GET, path: /}\n    expect: allow\n    rule: t/a\n"
        "  - name: post\n    request: {service: s, method: POST, path: /}\n    expect: allow\n"
        "  - name: bad\n    request: {service: s}\n    expect: deny\n"
        "  - name: wrong rule\n    request: {service: s, method: GET, path: /}\n    expect: allow\n    rule: t/b\n")
    results, issues = run_cases(tmp_path / "cases.yaml")
    assert issues == []
    assert [r.passed for r in results] == [True, False, False, False]
    assert results[1].problem.startswith("expected allow, got deny: ") and results[1].line == 6
    assert "t/a (" in results[1].problem and "failed on method" in results[1].problem
    assert "bad request" in results[2].problem
    assert "expected rule t/b" in results[3].problem


def test_lint_reports_schema_errors_with_line(tmp_path: Path) -> None:
    _policy(tmp_path, "  - name: a\n    effect: allow\n    destination: {services: [s], methods: [FETCH]}\n")
    issues = lint([tmp_path])
    assert len(issues) == 1 and issues[0].severity == "error" and issues[0].line == 7
    assert "FETCH" in issues[0].message


def test_lint_finds_shadowed_unreachable_and_broad_rules(tmp_path: Path) -> None:
    _policy(tmp_path, """\
  - name: records-all
    effect: allow
    source: {principals: ["spiffe://gov.example/ns/portal/**"]}
    destination: {services: [records], paths: ["/records/**"]}
  - name: records-one
    effect: allow
    source: {principals: ["spiffe://gov.example/ns/portal/sa/web"]}
    destination: {services: [records], methods: [GET], paths: ["/records/*"]}
  - name: no-exports
    effect: deny
    destination: {services: [records], paths: ["/export/**"]}
  - name: export-for-web
    effect: allow
    source: {principals: ["spiffe://gov.example/ns/portal/sa/web"]}
    destination: {services: [records], paths: ["/export/daily"]}
  - name: everything
    effect: allow
  - name: whole-service
    effect: allow
    destination: {services: [payments]}
  - name: scoped
    effect: allow
    destination: {services: [payments], methods: [GET]}
    when: {claims: {roles: {any: [x]}}}
""")
    messages = [i.message for i in lint([tmp_path])]
    assert any(m.startswith("t/records-one: shadowed by t/records-all") for m in messages)
    assert any(m.startswith("t/export-for-web: unreachable") and "t/no-exports" in m for m in messages)
    assert any(m == "t/everything: allows anyone on every service" for m in messages)
    assert any(m.startswith("t/whole-service: allows anyone every method") for m in messages)
    # Narrower rules after the catch-all can never decide; the first covering rule is named.
    assert any(m.startswith("t/scoped: shadowed by t/everything") for m in messages)
    assert any(m.startswith("t/whole-service: shadowed by t/everything") for m in messages)
    assert not any(m.startswith("t/records-all") for m in messages)
    assert [m for m in messages if m.startswith("t/no-exports")] == [
        "t/no-exports: denies what is below /export but not /export itself; write /export/... to deny both"]


def test_lint_is_quiet_when_a_deny_covers_its_bare_prefix(tmp_path: Path) -> None:
    _policy(tmp_path, """\
  - name: subtree
    effect: deny
    destination: {paths: ["/admin/..."]}
  - name: both-spelt
    effect: deny
    destination: {paths: ["/ops", "/ops/**", "/x/*/y/**"]}
  - name: allow-below-is-fine
    effect: allow
    destination: {services: [s], paths: ["/static/**"]}
""")
    assert not [i for i in lint([tmp_path]) if "itself" in i.message]


def test_explain_names_failed_conditions() -> None:
    engine = Engine.from_paths([EXAMPLES], risk=StaticRisk())
    ex = explain_request(engine, {
        "service": "records", "method": "PUT", "path": "/records/land/7", "principal": "clerk-1",
        "roles": ["clerk"], "groups": ["records-office"], "source_ip": "10.20.1.1", "time": "2026-03-04T05:00:00Z"})
    assert not ex.decision.allow
    by_rule = {t.rule: t for t in ex.traces}
    assert by_rule["records/clerks-office-hours"].failed == "time"
    assert by_rule["records/no-deletes"].failed == "method"
    assert by_rule["payments/portal-charges-fees"].failed == "service"
    assert any("records/clerks-office-hours" in m and "time" in m for m in ex.near_misses)
    d = ex.to_dict()
    assert d["decision"]["allow"] is False and len(d["rules"]) == len(engine.policy.rules)


def test_diff_reports_added_removed_changed(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _policy(a, "  - name: x\n    effect: allow\n    destination: {services: [s], methods: [GET]}\n"
               "  - name: gone\n    effect: deny\n")
    _policy(b, "  - name: x\n    effect: allow\n    destination: {services: [s], methods: [GET, POST]}\n"
               "  - name: new\n    effect: deny\n    dry_run: true\n")
    changes = {c.rule: c for c in diff_paths([a], [b])}
    assert changes["t/gone"].change == "removed" and changes["t/new"].change == "added"
    assert changes["t/x"].change == "changed" and changes["t/x"].fields == (("methods", ["GET"], ["GET", "POST"]),)
    assert diff_paths([a], [a]) == []


def test_whatif_lists_every_decision_that_would_change(store: Store, tmp_path: Path) -> None:
    log = DecisionLog(lambda: store, tmp_path / "spill.jsonl", own_store=False)
    engine = Engine.from_paths([EXAMPLES], risk=StaticRisk(), sink=log)
    when = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    clerk: dict[str, Any] = {"principal": "clerk-17", "roles": frozenset({"clerk"}), "groups": frozenset({"records-office"}),
             "source_ip": "10.20.3.4", "time": when, "risk": Risk()}
    engine.decide(Request("records", "GET", "/records/land/1", **clerk))         # allow
    engine.decide(Request("records", "GET", "/records/export/2025", **clerk))    # would_deny
    engine.decide(Request("records", "DELETE", "/records/land/1", **clerk))      # deny
    engine.decide(Request("idp", "GET", "/jwks.json", time=when, risk=Risk()))  # allow, unaffected
    engine.decide(Request("idp", "GET", "/jwks.json", time=when, token="garbage"))  # pre-policy deny
    # Refused by the canonicaliser (a front's refusal, and the engine's own): never replayed as anonymous.
    engine.refuse(Request("idp", "GET", "/jwks.json", time=when), "2 Authorization headers; exactly one is accepted")
    engine.decide(Request("idp", "GET", "/jwks.json%2F", time=when, risk=Risk()))
    log.flush()

    candidate = tmp_path / "candidate"
    shutil.copytree(EXAMPLES, candidate)
    records = candidate / "records.yaml"
    # Enforce the export rule, and let clerks delete (both change real decisions).
    text = records.read_text().replace("    dry_run: true\n", "")
    text = text.replace("methods: [GET, PUT, PATCH]", "methods: [GET, PUT, PATCH, DELETE]")
    text = text.replace("      methods: [DELETE]\n", "      methods: [DELETE]\n      paths: [\"/records/citizens/**\"]\n")
    records.write_text(text)

    report = whatif(store, [candidate])
    assert report.replayed == 4 and report.skipped == 3 and report.changed == 2 and report.unchanged == 2
    got = {(c.path, c.old, c.new) for c in report.changes}
    assert got == {("/records/export/2025", "would_deny", "deny"), ("/records/land/1", "deny", "allow")}
    assert report.summary()["would_deny->deny"] == 1
    assert whatif(store, [EXAMPLES]).changed == 0


def test_lint_warns_about_paths_no_canonical_request_has(tmp_path: Path) -> None:
    _policy(tmp_path, """\
  - name: odd-paths
    effect: deny
    destination: {paths: ["/admin%2F**", "/a//b", "/x/./y", "/admin./x", "/ok/*/z", "/fine/..."]}
""")
    messages = [i.message for i in lint([tmp_path])]
    assert any("'/admin%2F**' can never match" in m and "encodes '/'" in m for m in messages)
    assert any("'/a//b' can never match a request: requests are matched as '/a/b'" in m for m in messages)
    assert any("'/x/./y' can never match" in m for m in messages)
    assert any("'/admin./x' can never match" in m for m in messages)
    assert not any("/ok/" in m or "/fine/" in m for m in messages)


def test_unknown_keys_in_cases_are_refused_with_their_line(tmp_path: Path) -> None:
    _policy(tmp_path, "  - name: a\n    effect: allow\n    destination: {services: [s], methods: [GET]}\n")
    (tmp_path / "cases.yaml").write_text(
        "polices: .\n"
        "cases:\n"
        "  - name: misspelt\n    request: {service: s, method: GET, path: /, principle: bob}\n    expect: allow\n"
        "  - name: time beside the request\n    request: {service: s, method: GET, path: /}\n"
        "    time: '2026-03-04T05:00:00Z'\n    expect: allow\n"
        "  - name: typo\n    request: {service: s, method: GET, path: /}\n    expct: deny\n")
    results, issues = run_cases(tmp_path / "cases.yaml")
    assert results == []
    got = [(i.line, i.message) for i in issues]
    assert (1, "unknown key 'polices' (did you mean 'policies'?) (a cases file has: policies, cases)") in got
    assert (4, "case 'misspelt': unknown request key 'principle' (did you mean 'principal'?)") in got
    assert (8, "case 'time beside the request': unknown key 'time' (it belongs under request:)") in got
    assert (12, "case 'typo': unknown key 'expct' (did you mean 'expect'?)") in got


def test_a_failing_case_names_the_condition(tmp_path: Path) -> None:
    (tmp_path / "cases.yaml").write_text(
        f"policies: {EXAMPLES}\n"
        "cases:\n"
        "  - name: clerk at night, wrongly expected allowed\n"
        "    request: {service: records, method: PUT, path: /records/land/parcel-77, principal: clerk-17,\n"
        "              roles: [clerk], groups: [records-office], source_ip: 10.20.3.4, time: '2026-03-04T05:00:00Z'}\n"
        "    expect: allow\n"
        "  - name: delete, wrongly expected allowed by the clerks rule\n"
        "    request: {service: records, method: DELETE, path: /records/x, principal: clerk-17, roles: [clerk],\n"
        "              groups: [records-office], source_ip: 10.20.3.4, time: '2026-03-04T15:00:00Z'}\n"
        "    expect: allow\n"
        "  - name: home page, wrongly expected denied\n"
        "    request: {service: citizen-portal, method: GET, path: /}\n"
        "    expect: deny\n")
    results, issues = run_cases(tmp_path / "cases.yaml")
    assert issues == [] and not any(r.passed for r in results)
    night, delete, home = (r.problem for r in results)
    assert night.startswith("expected allow, got deny: no allow rule matched; closest: ") and "failed on time" in night
    assert "denied by records/no-deletes" in delete
    assert home.startswith("expected deny, got allow: allowed by citizen-portal/public-pages")


def test_coverage_lists_rules_no_case_matched(tmp_path: Path) -> None:
    from policy.admin.testcases import run_cases_with_engine, uncovered_rules

    _policy(tmp_path, "  - name: a\n    effect: allow\n    destination: {services: [s], methods: [GET]}\n"
                      "  - name: b\n    effect: deny\n    destination: {services: [s], methods: [DELETE]}\n"
                      "  - name: c\n    effect: allow\n    destination: {services: [s], methods: [POST]}\n")
    (tmp_path / "cases.yaml").write_text(
        "cases:\n  - name: get\n    request: {service: s, method: GET, path: /}\n    expect: allow\n"
        "  - name: delete\n    request: {service: s, method: DELETE, path: /}\n    expect: deny\n")
    results, issues, engine = run_cases_with_engine(tmp_path / "cases.yaml")
    assert issues == [] and engine is not None and all(r.passed for r in results)
    assert [rule for rule, _ in uncovered_rules(engine, results)] == ["t/c"]


def test_offline_tools_share_one_missing_risk_rule() -> None:
    """decide/explain without store risk and test decide the same request the same way."""
    from policy.admin.explain import explain
    from policy.admin.offline import offline_request
    from policy.engine import build_engine

    engine = build_engine([EXAMPLES])
    data = {"service": "citizen-portal", "method": "GET", "path": "/", "principal": "resident-4411"}
    # No risk source and none given: no open alerts (the baseline's critical-risk deny does not fail closed).
    assert engine.decide(offline_request(data, store_risk=False)).allow
    assert explain(engine, offline_request(data, store_risk=False)).decision.allow
    risky = {**data, "risk": {"open_alerts": 1, "max_level": "critical"}}
    assert not engine.decide(offline_request(risky, store_risk=False)).allow
    # With the store as the source and the store unreadable, the server's rule holds: fail closed.
    assert offline_request(data, store_risk=True).risk is None
