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
