"""Our pySigma pipelines: field and log-source mapping, and their publication as a pySigma plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sigma.backends.elasticsearch import LuceneBackend
from sigma.collection import SigmaCollection

from detections.sigma.pipelines import PIPELINES, get_pipeline

RULES = Path(__file__).resolve().parent.parent / "detections" / "rules"


def _lucene(yaml_text: str) -> str:
    return LuceneBackend(get_pipeline()).convert(SigmaCollection.from_yaml(yaml_text))[0]


def test_windows_security_rule() -> None:
    q = _lucene("""
title: t
logsource: {product: windows, service: security}
detection: {sel: {EventID: 4625, TargetUserName: admin}, condition: sel}
""")
    assert q == "winlog.channel:Security AND (event.code:4625 AND winlog.event_data.TargetUserName:admin)"


def test_linux_auth_and_zeek_and_unknown_sources() -> None:
    assert _lucene("""
title: t
logsource: {product: linux, service: sshd}
detection: {keywords: ['Failed password'], condition: keywords}
""").startswith("event.dataset:system.auth AND ")
    assert _lucene("""
title: t
logsource: {product: zeek, service: dns}
detection: {sel: {query|endswith: '.evil.example'}, condition: sel}
""") == "event.dataset:network.dns AND dns.question.name:*.evil.example"
    assert _lucene("""
title: t
logsource: {product: aws, service: cloudtrail}
detection: {sel: {eventName: StopLogging}, condition: sel}
""") == "event.dataset:aws.cloudtrail AND eventName:StopLogging"


def test_own_rules_use_ecs_names() -> None:
    assert _lucene("""
title: t
logsource: {product: ztsoc, service: policy}
detection: {sel: {event.action: deny}, condition: sel}
""") == "event.dataset:policy.decision AND event.action:deny"


def test_unknown_pipeline_name() -> None:
    import pytest

    with pytest.raises(ValueError, match="unknown pipeline"):
        get_pipeline("nope")


def test_published_as_a_pysigma_plugin() -> None:
    from sigma.plugins import InstalledSigmaPlugins

    found = InstalledSigmaPlugins.autodiscover().pipelines
    assert set(PIPELINES) <= set(found)


def test_sigma_cli_converts_and_checks_our_rules() -> None:
    sigma = Path(sys.executable).parent / "sigma"
    out = subprocess.run([str(sigma), "convert", "-t", "lucene", "-p", "ztsoc", str(RULES / "sudo_unusual_hour.yml")],
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    assert "event.dataset:system.auth" in out.stdout
    # attacktag / d3_fendtag download MITRE data: no network here
    check = subprocess.run([str(sigma), "check", "-x", "attacktag", "-x", "d3_fendtag", str(RULES)],
                           capture_output=True, text=True, timeout=180, cwd="/")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Found 0 errors" in check.stdout


_LOG_SOURCES = ("product: windows\n  category: process_creation", "product: windows\n  service: security",
                "product: windows\n  category: registry_set", "product: linux\n  service: sshd",
                "product: zeek\n  service: dns", "product: aws\n  service: cloudtrail",
                "product: ztsoc\n  service: auth", "category: firewall")


def test_kept_log_source_answers_process_every_rule_as_asking_anew() -> None:
    """One pipeline keeping its items' log-source answers across many rules processes each rule
    exactly as a fresh pipeline asking every item anew (trees, log source, items applied)."""
    import copy

    from sigma.rule import SigmaRule

    from detections.sigma.ir import tree_out
    from detections.sigma.loader import load_rules

    rules = [r.rule for r in load_rules().rules if isinstance(r.rule, SigmaRule)]
    for n, logsource in enumerate(_LOG_SOURCES * 2):
        rules += SigmaCollection.from_yaml(
            f"title: t{n}\nid: 00000000-0000-0000-0000-{n:012d}\nlogsource:\n  {logsource}\n"
            f"detection:\n  sel:\n    Image|endswith: '\\\\x{n}.exe'\n    User: root\n  condition: sel\n").rules
    kept = get_pipeline()
    assert any(item.match_rule_conditions.__name__ == "kept" for item in kept.items)  # type: ignore[attr-defined]

    def processed(rule: SigmaRule, pipeline: object) -> tuple[object, ...]:
        rule = copy.deepcopy(rule)
        pipeline.apply(rule)  # type: ignore[attr-defined]
        trees = [tree_out(c.parsed) for c in rule.detection.parsed_condition]
        return trees, rule.logsource, sorted(pipeline.applied_ids)  # type: ignore[attr-defined]

    for rule in rules:
        assert processed(rule, kept) == processed(rule, PIPELINES["ztsoc"]()), rule.title


def test_sysmon_mapping_survives_plugin_autodiscovery() -> None:
    """pySigma's ``@Pipeline`` decorator is one shared instance: importing another decorated pipeline
    (autodiscovery imports ``sigma.pipelines.test``) made ``sysmon_pipeline()`` run that one, and our
    Sysmon mapping vanished (sigma-cli's ``-p ztsoc``, and any test after the plugin test)."""
    import importlib

    importlib.import_module("sigma.pipelines.test")
    query = _lucene("title: t\nlogsource:\n  product: windows\n  category: process_creation\n"
                    "detection:\n  sel:\n    Image|endswith: '\\\\whoami.exe'\n  condition: sel\n")
    assert "event.code:1" in query and "Sysmon" in query
