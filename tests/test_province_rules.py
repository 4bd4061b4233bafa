"""Every shipped rule: a valid Sigma rule with ATT&CK tags, a level, a guide, a response, and
samples that fire (and near misses that do not). CI runs this over whatever is in detections/rules."""

from __future__ import annotations

import pytest

from detections.sigma.engine import compile_ruleset
from detections.sigma.loader import SHIPPED_RULES, load_rules
from detections.sigma.samples import check_samples

RULESET = load_rules()
#: rules an analyst sees alerts from (top of their chain); the others are building blocks
TOP = [r for r in RULESET.rules if r.meta.samples]


def test_every_shipped_file_loads_and_compiles() -> None:
    assert RULESET.problems == []
    cs = compile_ruleset(RULESET)
    assert cs.problems == []
    assert sorted(cs.generating) == sorted(r.key for r in TOP)


def test_the_province_scenarios_are_covered() -> None:
    names = {r.key for r in TOP}
    assert {"ssh_bruteforce_then_success", "password_spraying", "port_scan", "dns_tunnelling",
            "windows_failed_logon_burst", "windows_privileged_logon_off_hours", "sudo_off_hours",
            "policy_denials_service", "jwt_validation_failures", "service_first_call"} <= names


@pytest.mark.parametrize("rule", TOP, ids=lambda r: r.key)
def test_rule_metadata(rule) -> None:
    assert rule.path.parent == SHIPPED_RULES
    assert rule.uuid, "Sigma id (UUID) required"
    assert rule.rule.name, "a readable name (rule.id of the alerts)"
    assert rule.level in ("low", "medium", "high", "critical")
    assert any(t.startswith("attack.t") for t in rule.tags), "an ATT&CK technique tag"
    assert any(t.split(".", 1)[1] in __import__("detections.alerts").alerts.TACTICS for t in rule.tags
               if t.startswith("attack.") and not t.startswith("attack.t")), "an ATT&CK tactic tag"
    assert rule.meta.guide and len(rule.meta.guide) > 40
    assert rule.meta.response and len(rule.meta.response) > 20
    assert rule.meta.samples.get("match") and rule.meta.samples.get("near_miss")


@pytest.mark.parametrize("rule", TOP, ids=lambda r: r.key)
def test_samples_fire_and_near_misses_do_not(rule) -> None:
    for result in check_samples(RULESET, rule):
        assert result.ok, f"{rule.key} {result.kind}: {result.reason}"
