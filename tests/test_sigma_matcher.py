"""The embedded Sigma engine: Sigma semantics on flat ECS dicts, and the rule index."""

from __future__ import annotations

import pytest
from sigma.collection import SigmaCollection

from detections.sigma.matcher import Matcher, compile_rule
from detections.sigma.pipelines import get_pipeline


def _rule(detection: str, logsource: str = "product: ztsoc\n  service: auth"):
    text = f"""
title: t
id: 11111111-2222-4333-8444-555555555555
logsource:
  {logsource}
detection:
{detection}
"""
    return SigmaCollection.from_yaml(text).rules[0]


def _compiled(detection: str, logsource: str = "product: ztsoc\n  service: auth"):
    return compile_rule(_rule(detection, logsource), get_pipeline())


AUTH = {"event.dataset": "system.auth"}


#: Sigma semantics, one case a row (also run through the compiled-rule cache's format)
SEMANTICS = [
    ("  sel:\n    user.name: Root\n  condition: sel", {"user.name": "root"}, True),  # case-insensitive
    ("  sel:\n    user.name|cased: Root\n  condition: sel", {"user.name": "root"}, False),
    ("  sel:\n    process.command_line|contains: 'cat /etc/'\n  condition: sel",
     {"process.command_line": "/bin/CAT /etc/shadow"}, True),
    ("  sel:\n    process.command_line|contains|all: [cat, shadow]\n  condition: sel",
     {"process.command_line": "/bin/cat /etc/passwd"}, False),
    ("  sel:\n    process.command_line: '*cat*sha?ow'\n  condition: sel",
     {"process.command_line": "/bin/cat /etc/shadow"}, True),
    ("  sel:\n    user.name: [alice, bob, 'car*']\n  condition: sel", {"user.name": "Carol"}, True),
    ("  sel:\n    user.name|endswith: ['$', x]\n  condition: sel", {"user.name": "dc01$"}, True),
    ("  sel:\n    event.category: authentication\n  condition: sel", {"event.category": ["session", "authentication"]},
     True),  # multi-valued field: any value
    ("  sel:\n    source.port: 22\n  condition: sel", {"source.port": "22"}, True),  # number vs keyword
    ("  sel:\n    source.port|gte: 1024\n  condition: sel", {"source.port": 50022}, True),
    ("  sel:\n    source.ip|cidr: 10.0.0.0/8\n  condition: sel", {"source.ip": "10.20.1.5"}, True),
    ("  sel:\n    source.ip|cidr: 10.0.0.0/8\n  condition: sel", {"source.ip": "192.0.2.1"}, False),
    ("  sel:\n    user.name|re: '^adm\\.'\n  condition: sel", {"user.name": "adm.tremblay"}, True),
    ("  sel:\n    user.name: null\n  condition: sel", {}, True),
    ("  sel:\n    user.name|exists: true\n  condition: sel", {"user.name": "x"}, True),
    ("  sel:\n    user.name|exists: true\n  condition: sel", {}, False),
    ("  sel:\n    user.name|fieldref: user.effective.name\n  condition: sel",
     {"user.name": "root", "user.effective.name": "ROOT"}, True),
    ("  keywords: ['Failed password']\n  condition: keywords", {"message": "sshd: failed PASSWORD for root"}, True),
    ("  a:\n    user.name: root\n  b:\n    source.ip: 10.0.0.1\n  condition: a and not b",
     {"user.name": "root", "source.ip": "10.0.0.1"}, False),
    ("  a1:\n    user.name: x\n  a2:\n    user.name: root\n  condition: 1 of a*", {"user.name": "root"}, True),
    ("  sel:\n    '@timestamp|hour': [1, 2]\n  condition: sel", {"@timestamp": "2026-03-01T02:30:00.000Z"}, True),
    ("  sel:\n    '@timestamp|hour': [1, 2]\n  condition: sel", {"@timestamp": "2026-03-01T12:30:00.000Z"}, False),
]


@pytest.mark.parametrize(("detection", "doc", "expected"), SEMANTICS)
def test_semantics(detection: str, doc: dict, expected: bool) -> None:
    assert _compiled(detection).matches({**AUTH, **doc}) is expected


def test_logsource_pins_the_dataset() -> None:
    cr = _compiled("  sel:\n    user.name: root\n  condition: sel")
    assert not cr.matches({"event.dataset": "network.flow", "user.name": "root"})
    assert cr.required["event.dataset"] == frozenset({"system.auth"})


def test_windows_rule_maps_to_evtx_fields_and_is_indexed_by_event_code() -> None:
    cr = _compiled("  sel:\n    EventID: 4625\n    TargetUserName|startswith: adm\n  condition: sel",
                   "product: windows\n  service: security")
    event = {"event.code": "4625", "winlog.channel": "Security", "winlog.event_data.TargetUserName": "Adm.X"}
    assert cr.matches(event)
    assert not cr.matches({**event, "winlog.channel": "System"})
    assert cr.required["event.code"] == frozenset({"4625"})


def test_sysmon_category_gets_channel_and_event_id() -> None:
    cr = _compiled("  sel:\n    Image|endswith: '\\\\whoami.exe'\n  condition: sel",
                   "product: windows\n  category: process_creation")
    event = {"event.code": "1", "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
             "winlog.event_data.Image": "C:\\Windows\\System32\\WHOAMI.EXE"}
    assert cr.matches(event)
    assert not cr.matches({**event, "event.code": "3"})


def test_index_sends_each_event_only_to_rules_that_can_match() -> None:
    win = _compiled("  sel:\n    EventID: 4625\n  condition: sel", "product: windows\n  service: security")
    auth = _compiled("  sel:\n    user.name: root\n  condition: sel")
    m = Matcher([win, auth])
    from detections.sigma.matcher import EventView

    assert m.candidates(EventView({"event.code": "4625", "winlog.channel": "Security"})) == [win]
    # the auth rule is filed under its anchor (user.name = root), more selective than the dataset
    assert m.candidates(EventView({"event.dataset": "system.auth", "user.name": "Root"})) == [auth]
    assert m.candidates(EventView({"event.dataset": "system.auth", "user.name": "bob"})) == []
    assert m.candidates(EventView({"event.dataset": "network.flow"})) == []
    assert m.unindexed == 0
    assert m.match({"event.dataset": "system.auth", "user.name": "ROOT"}) == [auth]


def test_anchor_index_files_rules_under_their_executable() -> None:
    cr = _compiled("  sel:\n    Image|endswith: ['\\\\net.exe', '\\\\net1.exe']\n    CommandLine|contains: localgroup\n"
                   "  condition: sel", "product: windows\n  category: process_creation")
    assert sorted(cr.anchors or []) == [("winlog.event_data.Image", "base", "net.exe"),
                                        ("winlog.event_data.Image", "base", "net1.exe")]
    from detections.sigma.matcher import EventView

    m = Matcher([cr])
    event = {"event.code": "1", "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
             "winlog.event_data.Image": "C:\\Windows\\System32\\NET.exe",
             "winlog.event_data.CommandLine": "net localgroup administrators"}
    assert m.match(event) == [cr]
    assert m.candidates(EventView({**event, "winlog.event_data.Image": "C:\\x\\notepad.exe"})) == []


def test_a_common_shell_is_a_weaker_anchor_than_a_literal() -> None:
    """Most process events name cmd.exe or powershell.exe: a rule on them and on a command-line
    literal is filed under the literal, so the shell's every event does not meet it."""
    cr = _compiled("  sel:\n    Image|endswith: ['\\\\cmd.exe', '\\\\pwsh.exe']\n    CommandLine|contains: whoami\n"
                   "  condition: sel", "product: windows\n  category: process_creation")
    assert cr.anchors == [("winlog.event_data.CommandLine", "sub", "whoami")]
    from detections.sigma.matcher import EventView

    m = Matcher([cr])
    event = {"event.code": "1", "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
             "winlog.event_data.Image": "C:\\Windows\\System32\\CMD.exe", "winlog.event_data.CommandLine": "whoami /all"}
    assert m.match(event) == [cr]
    assert m.candidates(EventView({**event, "winlog.event_data.CommandLine": "dir"})) == []


def test_nested_documents_are_read_too() -> None:
    cr = _compiled("  sel:\n    winlog.event_data.LogonType: 10\n  condition: sel", "product: ztsoc\n  service: windows")
    assert cr.matches({"event.dataset": "windows.security", "winlog": {"event_data": {"LogonType": 10}}})


def test_defender_spaces_and_userdata_are_read_under_sigma_names() -> None:
    cr = _compiled("  sel:\n    ThreatName|endswith: EICAR_Test_File\n    Operation|contains: cleareventlog\n"
                   "  condition: sel", "product: windows\n  service: windefend")
    event = {"winlog.channel": "Microsoft-Windows-Windows Defender/Operational",
             "winlog.event_data.Threat Name": "Tool:Win32/EICAR_Test_File",
             "winlog.user_data.Operation_ClientFailure.Operation": "x::cleareventlog"}
    assert cr.matches(event)
    assert Matcher([cr]).match(event) == [cr]


@pytest.mark.parametrize(("pattern", "literal"), [
    (r"cmd.{0,5}(?:/c|/r).+powershell.+(?:\$\{?input\}?|noexit)", "powershell"),  # inner alternation: skipped
    ("a|bcd", ""),  # the whole pattern is an alternation: nothing is certain
    ("(abc|def)", ""),
    (r"\\cmd\.exe /c", "\\cmd.exe /c"),
])
def test_regex_literal(pattern: str, literal: str) -> None:
    from detections.sigma.matcher import regex_literal

    assert regex_literal(pattern) == literal


def test_anchor_prefers_the_selective_atom() -> None:
    cr = _compiled("  a:\n    IntegrityLevel: High\n  b:\n    CommandLine|contains: mimikatz\n  condition: a and b",
                   "product: windows\n  category: process_creation")
    assert cr.anchors == [("winlog.event_data.CommandLine", "sub", "mimikatz")]


def test_a_keyword_rule_with_an_index_value_is_filed_under_it() -> None:
    """Keywords are searched in all of an event's text: a rule that also names a channel meets
    only that channel's events, and the keyword search is left to rules with nothing else."""
    from detections.sigma.matcher import EventView

    channel = _compiled("  sel:\n    Channel: Application\n  keywords: ['Mimikatz', 'Cobalt', 'Koadic', 'Sliver']\n"
                        "  condition: sel and keywords", "product: windows\n  service: application")
    anywhere = _compiled("  keywords: ['sekurlsa::']\n  condition: keywords", "product: windows")
    assert channel.anchors and anywhere.anchors
    m = Matcher([channel, anywhere])
    app = {"winlog.channel": "Application", "winlog.event_data.Data": "HackTool:Win32/Mimikatz.D found"}
    quiet = {**app, "winlog.event_data.Data": "nothing to see"}
    assert m.candidates(EventView(quiet)) == [channel]  # by its channel, not by a keyword
    assert m.match(quiet) == []
    assert m.match(app) == [channel]
    assert m.match({**app, "winlog.channel": "System"}) == []
    other = {"winlog.channel": "Security", "winlog.event_data.CommandLine": "x.exe SEKURLSA::logonpasswords"}
    assert m.candidates(EventView(other)) == [anywhere]  # the keyword search for the other rule only
    assert m.match(other) == [anywhere]


def test_a_list_of_keywords_is_any_of_them_in_any_value() -> None:
    cr = _compiled("  keywords:\n    - 'alpha'\n    - 'beta*gamma'\n    - 'delta'\n    - 'epsilon'\n    - 'zeta'\n"
                   "  condition: keywords")
    assert cr.matches({**AUTH, "message": "x ALPHA y"})
    assert cr.matches({**AUTH, "a": "1", "b": "the beta and gamma"})
    assert cr.matches({**AUTH, "n": 5, "c": ["q", "ZETA!"]})
    assert not cr.matches({**AUTH, "a": "beta", "b": "gamma"})  # a keyword is within one value
    assert not cr.matches({**AUTH, "message": "eta"})


def test_a_flat_view_is_the_same_view() -> None:
    """A reader that makes flat events only lets the matcher skip the type check of every value."""
    cr = _compiled("  sel:\n    user.name: root\n    source.port: 22\n  condition: sel")
    m = Matcher([cr])
    event = {"event.dataset": "system.auth", "user.name": "ROOT", "source.port": 22, "tags": ["a"]}
    assert m.match(event, flat=True) == m.match(event) == [cr]
