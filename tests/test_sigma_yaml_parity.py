"""Rule files parsed by libyaml load exactly as through pySigma's own (pure-Python) loader.

Over the shipped rules and crafted YAML: every scalar type PyYAML's resolver knows (dates,
timestamps, YAML 1.1 booleans, octal / hex / sexagesimal numbers, ``.inf``, null), anchors,
aliases and merge keys, duplicate keys, block scalars with every chomping, quoting and escapes
(Windows paths, ``\\x``/``\\u``), unicode, a BOM, CRLF, several documents, explicit tags, and
broken files, whose problem names the file and the line. The same check over every SigmaHQ
YAML file: ``python -m tests.sigmaparity`` (needs ``../shared/data``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detections.sigma.loader import SHIPPED_RULES, load_file, yaml_documents
from eventstore.yamlfile import DuplicateKeyError
from tests.sigmaparity import differences, pysigma_documents, typed

HEAD = """title: crafted
id: 3c1e2d4f-0000-4000-8000-0000000000aa
logsource: {product: windows, category: process_creation}
"""
DETECTION = """detection:
  sel:
    Image|endswith: '\\cmd.exe'
  condition: sel
"""

CASES = {
    "scalars": HEAD + DETECTION + """date: 2024/05/01
modified: 2024-05-01
x_when: 2001-12-14t21:59:43.10-05:00
x_bools: [yes, No, on, OFF, y, n, true, False]
x_numbers: [0o17, 017, 0x1F, 1_000, 190:20:30, -0b101, 1.5e3, .inf, -.Inf, .NaN, 6.8523015e+5, 685_230.15]
x_null: [~, null, Null, ]
level: medium
""",
    "values": HEAD + """detection:
  sel:
    CommandLine|contains|all:
      - 'C:\\Windows\\Temp\\'
      - "C:\\\\Users\\\\\\x41\\u00e9\\t"
      - ' -enc '
    ParentImage: '*\\\\wmiprvse.exe'
    EventID: [4688, '4688', 0x12, 1e3]
    Hashes|contains: 'IMPHASH=ABCDEF0123'
    Port: 0445
  kw:
    - 'Set-MpPreference -DisableRealtimeMonitoring $true'
    - "it's \\"quoted\\""
  condition: sel or kw
description: |
  A literal block
    keeps its indentation
  and trailing newline.
references:
  - >-
    a folded
    block without its newline
  - |+
    kept

tags: [attack.t1059.001, 'attack.execution']
falsepositives: ['Ünïcödé, 中文, emoji 🙂']
level: high
""",
    "anchors": """title: &t anchored
id: 3c1e2d4f-0000-4000-8000-0000000000ab
logsource: &ls {product: windows, service: security}
detection:
  base: &base {EventID: 4625, LogonType: 3}
  sel:
    <<: *base
    TargetUserName: administrator
  other:
    <<: [*base, {Status: '0xc000006d'}]
  condition: sel or other
related: [{id: 3c1e2d4f-0000-4000-8000-0000000000ac, type: derived}]
x_again: *t
x_ls: *ls
level: low
""",
    "duplicate keys": HEAD + DETECTION + "level: low\nlevel: high\nstatus: test\nstatus: stable\n",
    "tags and crlf": ("\ufeff%YAML 1.1\n---\n" + HEAD + DETECTION
                      + "x_str: !!str 123\nx_float: !!float 1\nx_bin: !!binary aGVsbG8=\nx_set: !!set {a, b}\n"
                      "level: low\n").replace("\n", "\r\n"),
    "several documents": HEAD + DETECTION + "level: low\n---\n" + HEAD.replace("00aa", "00ad")
    .replace("crafted", "second") + DETECTION + "level: high\n...\n---\n# only a comment\n",
    "correlation": HEAD.replace("crafted", "base") + "name: base_rule\n" + DETECTION + """---
title: corr
id: 3c1e2d4f-0000-4000-8000-0000000000ae
correlation:
  type: event_count
  rules: [base_rule]
  group-by: [Computer, User]
  timespan: 1h
  condition: {gte: 010}
level: critical
""",
    "not a rule": "just a string\n---\n[1, 2]\n---\n{title: no detection}\n",
    "empty": "",
    "unclosed flow": HEAD + "detection:\n  sel:\n    a: [1\n  condition: sel\n",
    "bad indentation": HEAD + "detection:\n  sel:\n    a: 1\n   b: 2\n  condition: sel\n",
    "tab": HEAD + "detection:\n\tsel: 1\n",
    "bad escape": HEAD + 'description: "\\q"\n' + DETECTION,
    "unknown tag": HEAD + "x: !python/object:os.system ls\n" + DETECTION,
    "undefined alias": HEAD + "x: *nowhere\n" + DETECTION,
    "control character": HEAD + "description: bell \x07 here\n" + DETECTION,
}
BROKEN = {"unclosed flow", "bad indentation", "tab", "bad escape", "unknown tag", "undefined alias",
          "control character"}
#: a key twice: pySigma keeps the last value, the loader refuses the document (eventstore.yamlfile)
REFUSED = {"duplicate keys"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_crafted_yaml_loads_as_through_pysigma(tmp_path: Path, name: str) -> None:
    path = tmp_path / "rule.yml"
    path.write_bytes(CASES[name].encode("utf-8"))
    assert differences(path) == []
    rules, problems = load_file(path)
    if name in BROKEN or name in REFUSED:
        assert not rules and problems and problems[0].path == str(path)
    elif name not in ("not a rule", "empty"):
        assert rules and not problems, problems


def test_crafted_documents_keep_their_types() -> None:
    """The cases above mean something: the documents hold what pySigma's loader gives."""
    doc = yaml_documents(CASES["scalars"])[0]
    assert typed(doc) == typed(pysigma_documents(CASES["scalars"])[0])
    assert doc["x_bools"] == [True, False, True, False, "y", "n", True, False]
    assert doc["x_numbers"][:6] == ["0o17", 15, 31, 1000, 685230, -5]  # YAML 1.1: 0o is not octal
    assert str(doc["modified"]) == "2024-05-01" and doc["x_null"] == [None, None, None]
    anchors = yaml_documents(CASES["anchors"])[0]
    assert anchors["detection"]["other"] == {"EventID": 4625, "LogonType": 3, "Status": "0xc000006d"}
    assert pysigma_documents(CASES["duplicate keys"])[0]["level"] == "high"  # pySigma: the last wins
    (refused,) = yaml_documents(CASES["duplicate keys"])
    assert isinstance(refused, DuplicateKeyError) and refused.key == "level"


def test_a_broken_file_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(CASES["unclosed flow"], encoding="utf-8")
    (problem,) = load_file(path)[1]
    assert problem.path == str(path) and problem.stage == "load"
    assert problem.reason.startswith("ParserError: 7:12: ")  # line 7, column 12 of the file


def test_shipped_rules_load_as_through_pysigma() -> None:
    files = sorted(p for p in SHIPPED_RULES.rglob("*") if p.suffix in (".yml", ".yaml"))
    assert files
    assert [d for f in files for d in differences(f)] == []
