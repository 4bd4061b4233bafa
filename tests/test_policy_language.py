"""The policy language: schema errors with file and line, semantic checks, globs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from policy.language import (
    PolicyError,
    glob_to_regex,
    load_policy_set,
    parse_policy_text,
    policy_files,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "policy" / "examples"

GOOD = """\
apiVersion: ztsoc/v1
kind: Policy
name: demo
rules:
  - name: read
    effect: allow
    source: {principals: ["spiffe://gov.example/ns/*/sa/web"], ip_ranges: [10.0.0.0/8]}
    destination: {services: [records], methods: [GET], paths: ["/records/**"]}
    when:
      claims: {roles: {any: [clerk]}, scopes: {all: [a, b]}}
      time: {days: [mon, fri], from: "22:00", to: "06:00", timezone: America/Regina}
      risk: {max_open_alerts: 2, max_level: medium}
"""


def test_examples_load_and_every_rule_is_typed() -> None:
    ps = load_policy_set([EXAMPLES])
    names = {p.name for p in ps.policies}
    assert names == {"baseline", "citizen-portal", "records", "payments", "identity-provider", "admin-tools"}
    assert all(r.file.endswith(".yaml") and r.line > 0 for r in ps.rules)
    # tests.yaml sits beside the policies but is not one.
    assert not any(f.endswith("tests.yaml") for f in ps.sources)


def test_rule_fields_are_parsed() -> None:
    policies, issues = parse_policy_text(GOOD, "demo.yaml")
    assert issues == []
    rule = policies[0].rules[0]
    assert rule.id == "demo/read" and rule.line == 5
    assert rule.methods == ("GET",)
    assert dict(rule.claims)["scopes"].all == {"a", "b"}
    assert rule.time is not None and rule.time.days == {0, 4} and rule.time.timezone == "America/Regina"
    assert rule.risk is not None and rule.risk.max_level == "medium"


@pytest.mark.parametrize(("text", "line", "message"), [
    (GOOD.replace("effect: allow", "effect: permit"), 6, "'permit' is not allowed here: use one of allow, deny"),
    (GOOD.replace("methods: [GET]", "methods: [get]"), 8, "'get' is not allowed here: use one of GET"),
    (GOOD.replace("max_open_alerts: 2", "max_open_alerts: -1"), 12, "-1 is too small: at least 0"),
    (GOOD.replace("    effect: allow\n", "    effect: allow\n    colour: blue\n"), 5, "unknown key 'colour'"),
    (GOOD.replace("10.0.0.0/8", "10.0.0.300/8"), 7, "bad CIDR"),
    (GOOD.replace("America/Regina", "Mars/Olympus"), 11, "unknown timezone"),
    # a name longer than a file name may be (the policy_yaml fuzz harness found it raising OSError)
    (GOOD.replace("America/Regina", "America/Reg" + "x" * 300 + "ina"), 11, "unknown timezone"),
    (GOOD.replace('from: "22:00"', 'from: "25:00"'), 11, "'25:00': use HH:MM"),
    (GOOD + "  - name: read\n    effect: deny\n", 13, "already used at line 5"),
    (GOOD.replace("kind: Policy\n", "kind: Policy\nkind: Policy\n"), 3, "duplicate key 'kind'"),
    ("apiVersion: ztsoc/v1\nkind: Policy\nname: x\nrules: [\n", 5, "YAML syntax"),
    # a list or a mapping as a key (the policy_yaml fuzz harness found it raising TypeError)
    (GOOD.replace("name: demo\n", "name: demo\n? [a, b]\n: x\n"), 4, "a key must be plain text"),
    (GOOD.replace("    effect: allow\n", "    effect: allow\n    {a: 1}: x\n"), 7, "a key must be plain text"),
])
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    _, issues = parse_policy_text(text, "demo.yaml")
    assert issues, "expected a problem"
    assert any(i.line == line and message in i.message for i in issues), [str(i) for i in issues]
    assert all(str(i).startswith("demo.yaml:") for i in issues)


def test_load_policy_set_raises_with_every_issue(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("effect: allow", "effect: permit"))
    (tmp_path / "b.yaml").write_text(GOOD.replace("10.0.0.0/8", "bad"))
    with pytest.raises(PolicyError) as info:
        load_policy_set([tmp_path])
    files = {Path(i.file).name for i in info.value.issues}
    assert files == {"a.yaml", "b.yaml"}
    assert "a.yaml:6" in str(info.value)


def test_duplicate_policy_names_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(PolicyError, match="already defined"):
        load_policy_set([tmp_path])


def test_policy_files_skip_non_policies(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(GOOD)
    (tmp_path / "cases.yaml").write_text("cases: []\n")
    assert [f.name for f in policy_files([tmp_path])] == ["p.yaml"]


@pytest.mark.parametrize(("glob", "yes", "no"), [
    ("/records/*", ["/records/1"], ["/records/1/2", "/records"]),
    ("/records/**", ["/records/1", "/records/1/2"], ["/recordsX"]),
    ("spiffe://gov.example/ns/*/sa/web", ["spiffe://gov.example/ns/a/sa/web"], ["spiffe://gov.example/ns/a/b/sa/web"]),
    ("/a.b?", ["/a.bc"], ["/aXbc", "/a.b/"]),
])
def test_globs(glob: str, yes: list[str], no: list[str]) -> None:
    rx = re.compile(glob_to_regex(glob) + r"\Z")
    assert all(rx.match(y) for y in yes)
    assert not any(rx.match(n) for n in no)
