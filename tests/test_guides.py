"""Rule guides: from the alert (as the runner copies them), else from the rule file."""

from __future__ import annotations

from pathlib import Path

from alertseed import alert

from detections.guides import rule_guide


def test_rule_guide_from_the_alert_then_the_rule_file(tmp_path: Path) -> None:
    carried = rule_guide(alert("g1"))
    assert carried.investigation == "Find the account that logged in and what it did next."
    assert carried.response == ["Lock the account, block the source at the edge."]
    (tmp_path / "scan.yml").write_text(
        "title: Lab probe\nname: lab_probe_test_only\nid: 0b6a\nlevel: low\nfalsepositives:\n  - vulnerability scanners\n"
        "ztsoc:\n  guide: Check whether the source is the scanner.\n  response: |\n    1. Block it\n    2. Tell IT\n",
        encoding="utf-8")
    from_file = rule_guide({"rule.id": "lab_probe_test_only"}, [str(tmp_path)])
    assert from_file.investigation == "Check whether the source is the scanner."
    assert from_file.response == ["Block it", "Tell IT"]
    assert from_file.falsepositives == ["vulnerability scanners"]
    assert rule_guide({"rule.id": "nothing", "rule.description": "d"}, [str(tmp_path)]).investigation == "d"


def test_placeholders_are_filled_with_the_alerts_values_when_safe() -> None:
    from detections.guides import fill, rule_guide

    alert = {"rule.id": "ssh_bruteforce_then_success", "source.ip": "203.0.113.9", "user.name": "lan.pham",
             "host.name": "jump-02", "ztsoc.alert.entity.type": "ip", "ztsoc.alert.entity.value": "203.0.113.9"}
    guide = rule_guide(alert)
    assert guide.investigation and "203.0.113.9" in guide.investigation and "<ip>" not in guide.investigation
    assert fill("soc hunt 'host.name:<host> AND user.name:<user>'; usermod -L <user>", alert) == \
        "soc hunt 'host.name:jump-02 AND user.name:lan.pham'; usermod -L lan.pham"
    # an attacker picks user names: one that could break out of the quotes around it stays a placeholder
    hostile = {**alert, "user.name": "x' OR * ; rm -rf ~ #"}
    assert fill("soc hunt 'user.name:<user>'; usermod -L <user>", hostile) == \
        "soc hunt 'user.name:<user>'; usermod -L <user>"
    assert fill("<dst> stays when unknown", alert) == "<dst> stays when unknown"
