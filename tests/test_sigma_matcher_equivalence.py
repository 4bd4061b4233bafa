"""The matcher's fast path against a plain one, on generated events (Hypothesis).

``Matcher.match`` walks a flat event once (its indexed fields lowered once and kept for the
predicates, the keyword automaton run once over all values joined) and evaluates compiled
closures. Here every rule is also evaluated the plain way: its processed condition tree
interpreted node by node over the event, as the Sigma specification reads (a wildcard string is
a case-insensitive full match, a keyword a substring of any value, a list OR...), with no index
and no cache. Both must give the same rules for every event, so a speed-up cannot change answers.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings, target
from hypothesis import strategies as st
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    Placeholder,
    SigmaCasedString,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from detections.sigma.matcher import EventView, Matcher, compile_rule
from detections.sigma.pipelines import get_pipeline

SYSMON = "Microsoft-Windows-Sysmon/Operational"
#: literals the rules use and the events are made of (case, non-ASCII, backslashes, a final sigma)
WORDS = ["cmd.exe", "WHOAMI", "powershell", "\\Temp\\", "Σίσυφος", "İstanbul", "straße", "mimikatz", "a?b", "x",
         "High", "\\cmd.exe", "C:\\x", "4"]

RULES = [
    ("product: windows\n  category: process_creation",
     "  sel:\n    Image|endswith: '\\cmd.exe'\n    CommandLine|contains: whoami\n  condition: sel"),
    ("product: windows\n  category: process_creation",
     "  sel:\n    CommandLine|contains|all: [powershell, '\\Temp\\']\n  condition: sel"),
    ("product: windows\n  category: process_creation",
     "  sel:\n    CommandLine|contains: [mimikatz, 'ΣΊΣΥΦΟΣ', 'straße', 'İstanbul', a, b]\n"
     "  filter:\n    User|startswith: x\n  condition: sel and not filter"),
    ("product: windows\n  category: process_creation",
     "  sel:\n    Image: ['*\\\\cmd.exe', 'C:\\\\x?y\\\\*']\n  condition: sel"),
    ("product: windows\n  category: process_creation",
     "  sel:\n    ParentImage|endswith: [a, b, c, d, '.exe']\n    IntegrityLevel: High\n  condition: sel"),
    ("product: windows\n  category: process_creation", "  sel:\n    User|cased: WHOAMI\n  condition: sel"),
    ("product: windows\n  category: process_creation", "  sel:\n    CommandLine|re: '(?i)who.mi'\n  condition: sel"),
    ("product: windows\n  category: process_creation", "  sel:\n    User: null\n    Image: x\n  condition: sel"),
    ("product: windows\n  category: process_creation",
     "  sel:\n    ProcessId|exists: true\n    CommandLine|contains: x\n  condition: sel"),
    ("product: windows\n  service: security", "  sel:\n    EventID: 4688\n    SubjectUserName: x\n  condition: sel"),
    ("product: windows\n  service: windefend", "  sel:\n    ThreatName|contains: mimikatz\n  condition: sel"),
    ("product: windows\n  service: system", "  sel:\n    Operation|contains: powershell\n  condition: sel"),
    ("product: windows\n  service: powershell", "  keywords: ['mimikatz', 'Σίσυφος']\n  condition: keywords"),
    ("product: windows\n  service: powershell",
     "  keywords:\n    - 'who*mi'\n  sel:\n    EventID: 4104\n  condition: keywords and sel"),
    ("product: windows\n  category: process_creation",
     "  a:\n    CommandLine|contains: a\n  b:\n    CommandLine|contains: b\n  c:\n    Image|endswith: x\n"
     "  d:\n    User: x\n  condition: 1 of a* or (b and c and d and not a)"),
    ("product: windows\n  category: process_creation", "  sel:\n    ProcessId: 4\n  condition: sel"),
]


def _compiled() -> list[Any]:
    out = []
    for n, (logsource, detection) in enumerate(RULES):
        text = f"title: r{n}\nid: 00000000-0000-4000-8000-{n:012d}\nlogsource:\n  {logsource}\ndetection:\n{detection}\n"
        rule = SigmaCollection.from_yaml(text).rules[0]
        assert isinstance(rule, SigmaRule)
        out.append(compile_rule(rule, get_pipeline(), key=f"r{n}"))
    return out


COMPILED = _compiled()
MATCHER = Matcher(COMPILED)


# -- the plain path: the condition tree read node by node ---------------------------------
def _strings(value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    if isinstance(value, int | float):
        return [str(value)]
    if isinstance(value, list):
        return [s for v in value if v is not None and not isinstance(v, dict | list) for s in _strings(v)]
    return []


def _lookup(doc: dict[str, Any], name: str) -> Any:
    if name in doc:
        return doc[name]
    if name.startswith("winlog.event_data."):
        for key in doc:  # Defender's spaced names, UserData: under their last name, first one wins
            if ((" " in key or key.startswith("winlog.user_data."))
                    and key.startswith(("winlog.event_data.", "winlog.user_data."))
                    and "winlog.event_data." + key.rsplit(".", 1)[-1].replace(" ", "") == name):
                return doc[key]
    sub: Any = doc
    for part in name.split("."):  # a nested document, the plain way
        if not isinstance(sub, dict) or part not in sub:
            return None
        sub = sub[part]
    return None if isinstance(sub, dict) else sub


def _pattern(value: SigmaString, *, cased: bool) -> re.Pattern[str]:
    out = []
    for p in value.s:
        if p is SpecialChars.WILDCARD_MULTI or isinstance(p, Placeholder):
            out.append(".*")
        elif p is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            out.append(re.escape(p if cased else p.lower()))
    return re.compile("".join(out), re.DOTALL)


def _value_ok(value: Any, texts: list[str] | None) -> bool:
    if isinstance(value, SigmaExpansion):
        return any(_value_ok(v, texts) for v in value.values)
    if isinstance(value, SigmaNull):
        return not texts or all(t == "" for t in texts)
    if isinstance(value, SigmaExists):
        return (texts is not None) == value.exists
    if not texts:
        return False
    if isinstance(value, SigmaCasedString):
        return any(_pattern(value, cased=True).fullmatch(t) for t in texts)
    if isinstance(value, SigmaString):
        return any(_pattern(value, cased=False).fullmatch(t.lower()) for t in texts)
    if isinstance(value, SigmaNumber):
        return any(t == str(value.number) for t in texts)
    if isinstance(value, SigmaRegularExpression):
        flags = re.IGNORECASE if SigmaRegularExpressionFlag.IGNORECASE in value.flags else 0
        return any(re.search(str(value.regexp), t, flags) for t in texts)
    raise AssertionError(f"the plain path does not cover {type(value).__name__}")


def plain(node: Any, doc: dict[str, Any]) -> bool:
    if isinstance(node, ConditionAND):
        return all(plain(a, doc) for a in node.args)
    if isinstance(node, ConditionOR):
        return any(plain(a, doc) for a in node.args)
    if isinstance(node, ConditionNOT):
        return not plain(node.args[0], doc)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        raw = _lookup(doc, node.field)
        return _value_ok(node.value, None if raw is None else _strings(raw))
    if isinstance(node, ConditionValueExpression):  # a keyword: a substring of any value
        texts = [t.lower() for v in doc.values() if v is not None for t in _strings(v)]
        value = node.value
        needle = _pattern(value, cased=False).pattern if isinstance(value, SigmaString) else re.escape(str(value))
        return any(re.search(needle, t, re.DOTALL) for t in texts)
    raise AssertionError(f"the plain path does not cover {type(node).__name__}")


# -- generated events ----------------------------------------------------------------------
def _text() -> st.SearchStrategy[str]:
    word = st.sampled_from(WORDS).flatmap(lambda w: st.sampled_from([w, w.upper(), w.lower(), w.title()]))
    return st.one_of(word, st.lists(st.one_of(word, word, st.text(max_size=2)), max_size=4).map("".join))


VALUE = st.one_of(_text(), _text().map(lambda t: "C:\\Windows\\" + t), st.integers(0, 9), st.booleans(),
                  st.none(), st.lists(st.one_of(_text(), st.integers(0, 9), st.none()), max_size=3))
SOURCES = [("1", SYSMON), ("4688", "Security"), ("4104", "Microsoft-Windows-PowerShell/Operational"),
           ("1116", "Microsoft-Windows-Windows Defender/Operational"), ("7045", "System")]
FIELDS = ["Image", "CommandLine", "ParentImage", "User", "IntegrityLevel", "ProcessId", "SubjectUserName",
          "Threat Name", "ThreatName"]


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    code, channel = draw(st.sampled_from(SOURCES))
    doc: dict[str, Any] = {"event.code": code, "winlog.channel": channel}
    if draw(st.integers(0, 4)) == 0:  # now and then a pair no rule expects
        doc["event.code"] = draw(st.sampled_from(["3", "7045", "4104", "1"]))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
        doc["winlog.event_data." + name] = draw(VALUE)
    if draw(st.booleans()):
        doc["winlog.user_data.Wrapper.Operation"] = draw(_text())
    if draw(st.booleans()):
        doc["message"] = draw(_text())
    if draw(st.integers(0, 9)) == 0:  # a nested document: the index walks its own fields then
        doc["winlog"] = {"event_data": {"Image": draw(_text()), "CommandLine": draw(_text())}}
    return doc


@settings(max_examples=600, deadline=None)
@given(events())
def test_fast_path_agrees_with_the_plain_reading(doc: dict[str, Any]) -> None:
    fast = {cr.key for cr in MATCHER.match(doc)}
    target(float(len(fast)))  # steer the search towards events that match
    assert fast == {cr.key for cr in COMPILED if any(plain(t, doc) for t in cr.trees)}
    # and with each compiled rule alone on a fresh view (no index, no values lowered in advance)
    assert fast == {cr.key for cr in COMPILED if cr.predicate(EventView(doc))}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6), st.sampled_from(WORDS)), min_size=1, max_size=5))
def test_values_joined_then_lowered_are_the_values_lowered(values: list[str]) -> None:
    """What the keyword automaton reads (one lower() of the values joined by NUL) is each value lowered."""
    assert "\x00".join(values).lower() == "\x00".join(v.lower() for v in values)


def test_every_rule_matches_a_made_event_on_both_paths() -> None:
    """The rules are not dead: one made event for each, matched by the fast and the plain path alike."""
    proc = {"event.code": "1", "winlog.channel": SYSMON}
    data = "winlog.event_data."
    cases: dict[str, dict[str, Any]] = {
        "r0": {**proc, data + "Image": "C:\\Windows\\CMD.EXE", data + "CommandLine": "WhoAmI /all"},
        "r1": {**proc, data + "CommandLine": "PowerShell -f C:\\TEMP\\a.ps1"},
        "r2": {**proc, data + "CommandLine": "ΣΊΣΥΦΟΣ"},
        "r3": {**proc, data + "Image": "C:\\X1Y\\z"},
        "r4": {**proc, data + "ParentImage": "C:\\a.EXE", data + "IntegrityLevel": "high"},
        "r5": {**proc, data + "User": "WHOAMI"},
        "r6": {**proc, data + "CommandLine": "WHO-MI"},
        "r7": {**proc, data + "Image": "X", data + "User": ""},
        "r8": {**proc, data + "ProcessId": 0, data + "CommandLine": "x"},
        "r9": {"event.code": "4688", "winlog.channel": "Security", data + "SubjectUserName": "X"},
        "r10": {"event.code": "1116", "winlog.channel": "Microsoft-Windows-Windows Defender/Operational",
                data + "Threat Name": "HackTool:Win32/Mimikatz"},
        "r11": {"event.code": "7045", "winlog.channel": "System", "winlog.user_data.Op.Operation": "POWERSHELL"},
        "r12": {"event.code": "4104", "winlog.channel": "Microsoft-Windows-PowerShell/Operational",
                "message": "ΣΊΣΥΦΟΣ was here"},
        "r13": {"event.code": "4104", "winlog.channel": "Microsoft-Windows-PowerShell/Operational",
                "message": ["x", "WHOAMI"]},
        "r14": {**proc, data + "CommandLine": "b", data + "Image": "x", data + "User": "x"},
        "r15": {**proc, data + "ProcessId": 4},
    }
    assert sorted(cases) == sorted(cr.key for cr in COMPILED)
    for key, doc in cases.items():
        fast = {cr.key for cr in MATCHER.match(doc)}
        assert key in fast, (key, doc)
        assert fast == {cr.key for cr in COMPILED if any(plain(t, doc) for t in cr.trees)}, (key, doc)


def test_matching_leaves_no_cyclic_garbage() -> None:
    """A view and its caches are freed by reference counting: scans and detection runs pause the
    cyclic collector, so a cycle per event would keep every event until the run ends."""
    import gc

    docs = [{"event.code": "1", "winlog.channel": SYSMON, "winlog.event_data.CommandLine": f"whoami {n}",
             "winlog.event_data.Image": "C:\\Windows\\cmd.exe", "winlog.event_data.Threat Name": "x"}
            for n in range(50)]
    for doc in docs:  # predicates of the cache's lazy rules are built on first use: not measured
        MATCHER.match(doc)
    gc.collect()
    was_on = gc.isenabled()
    gc.disable()
    try:
        for doc in docs:
            MATCHER.match(doc)
            EventView(doc).lower["winlog.event_data.ThreatName"]
        assert gc.collect() == 0
    finally:
        if was_on:
            gc.enable()
