"""The policy language: YAML files checked against ``schema.json``, turned into typed rules.

Every value keeps the file and line it came from, so a schema error, a lint finding or a
denial can point at the line an admin has to edit. PyYAML's node tree carries the marks;
this module walks it by hand (PyYAML's constructors drop them), which also lets it refuse
a mapping with the same key twice, which PyYAML would silently resolve to the last one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import time as dtime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

SCHEMA_PATH = Path(__file__).with_name("schema.json")
LEVELS: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")
LEVEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(LEVELS, start=1)}
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
POLICY_SUFFIXES = (".yaml", ".yml")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a policy file: where, what, and how bad."""

    file: str
    line: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message}"


class PolicyError(ValueError):
    """A policy set that must not be loaded; ``issues`` has every problem found."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        head = str(self.issues[0]) if self.issues else "invalid policy"
        more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(head + more)


@dataclass(frozen=True, slots=True)
class ClaimCondition:
    any: frozenset[str] = frozenset()
    all: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TimeWindow:
    days: frozenset[int] = frozenset(range(7))
    start: dtime | None = None
    end: dtime | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class RiskCondition:
    max_open_alerts: int | None = None
    max_level: str | None = None
    min_open_alerts: int | None = None
    min_level: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    policy: str
    name: str
    effect: str
    file: str = "<memory>"
    line: int = 0
    description: str = ""
    dry_run: bool = False
    principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    authenticated: bool | None = None
    issuers: tuple[str, ...] = ()
    principal_kinds: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    claims: tuple[tuple[str, ClaimCondition], ...] = ()
    time: TimeWindow | None = None
    risk: RiskCondition | None = None

    @property
    def id(self) -> str:
        return f"{self.policy}/{self.name}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    file: str
    description: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class PolicySet:
    policies: tuple[Policy, ...]
    version: str
    sources: tuple[str, ...] = ()
    warnings: tuple[Issue, ...] = field(default=())

    @property
    def rules(self) -> list[Rule]:
        return [r for p in self.policies for r in p.rules]


# -- YAML with line numbers ---------------------------------------------------------------
def _convert(node: yaml.Node, path: Path_, lines: dict[Path_, int], issues: list[Issue], file: str,
             ctor: yaml.SafeLoader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]: x` or `{a: 1}: x`: YAML allows it, we do not
                issues.append(Issue(file, key_node.start_mark.line + 1, "a key must be plain text, not a list or a mapping"))
                continue
            key = key_node.value
            if key in out:
                issues.append(Issue(file, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
                continue
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, (*path, key), lines, issues, file, ctor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), lines, issues, file, ctor) for i, item in enumerate(node.value)]
    return ctor.construct_object(node)


def load_yaml_documents(text: str, file: str) -> tuple[list[tuple[Any, dict[Path_, int]]], list[Issue]]:
    """Each document with its ``path -> line`` table, plus parse problems (never raises)."""
    issues: list[Issue] = []
    docs: list[tuple[Any, dict[Path_, int]]] = []
    ctor = yaml.SafeLoader("")
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is None:
                continue
            lines: dict[Path_, int] = {}
            docs.append((_convert(node, (), lines, issues, file, ctor), lines))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        issues.append(Issue(file, line, f"YAML syntax: {getattr(exc, 'problem', None) or exc}"))
    return docs, issues


def line_of(lines: dict[Path_, int], path: Iterable[str | int]) -> int:
    p = tuple(path)
    while p and p not in lines:
        p = p[:-1]
    return lines.get(p, 1)


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema_issues(doc: Any, lines: dict[Path_, int], file: str) -> list[Issue]:
    from policy.schema_messages import admin_message

    issues = []
    for err in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        issues.append(Issue(file, line_of(lines, err.absolute_path), admin_message(doc, err)))
    return issues


# -- globs ----------------------------------------------------------------------------------
SUBTREE = "/..."


def glob_to_regex(pattern: str) -> str:
    """``*`` and ``?`` stay within a ``/`` segment, ``**`` crosses them (``fnmatch`` cannot).

    A trailing ``/...`` (Go's package-pattern form) covers the prefix itself and everything
    below it: ``/admin/...`` matches ``/admin``, ``/admin/`` and ``/admin/x/y``, where
    ``/admin/**`` leaves the bare ``/admin`` out. A canonical path never has a ``...``
    segment (``policy.canonical`` refuses segments ending in a dot), so the form is unambiguous.
    """
    if pattern.endswith(SUBTREE):
        base = pattern[: -len(SUBTREE)]
        return glob_to_regex(base) + "(?:/.*)?" if base else "/.*"
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?") or pattern.endswith(SUBTREE)


# -- semantic checks and typed rules ---------------------------------------------------------
def _parse_time(text: str) -> dtime:
    hours, minutes = text.split(":")
    if hours == "24":
        return dtime(23, 59, 59, 999999)
    return dtime(int(hours), int(minutes))


def _rule(doc: dict[str, Any], policy: str, index: int, lines: dict[Path_, int], file: str,
          issues: list[Issue]) -> Rule:
    base: Path_ = ("rules", index)
    src = doc.get("source") or {}
    dst = doc.get("destination") or {}
    when = doc.get("when") or {}
    for i, cidr in enumerate(src.get("ip_ranges") or []):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            issues.append(Issue(file, line_of(lines, (*base, "source", "ip_ranges", i)), f"bad CIDR {cidr!r}: {exc}"))
    tw = None
    if "time" in when:
        t = when["time"]
        tz = t.get("timezone", "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
            issues.append(Issue(file, line_of(lines, (*base, "when", "time", "timezone")), f"unknown timezone {tz!r}"))
            tz = "UTC"
        tw = TimeWindow(
            days=frozenset(DAYS.index(d) for d in t.get("days", DAYS)),
            start=_parse_time(t["from"]) if "from" in t else None,
            end=_parse_time(t["to"]) if "to" in t else None,
            timezone=tz,
        )
    risk = None
    if "risk" in when:
        r = when["risk"]
        risk = RiskCondition(r.get("max_open_alerts"), r.get("max_level"), r.get("min_open_alerts"), r.get("min_level"))
    claims = tuple(
        (name, ClaimCondition(frozenset(c.get("any", ())), frozenset(c.get("all", ()))))
        for name, c in sorted((when.get("claims") or {}).items())
    )
    methods = tuple(dict.fromkeys(dst.get("methods", ())))
    if "*" in methods:
        methods = ()
    return Rule(
        policy=policy, name=doc["name"], effect=doc["effect"], file=file, line=line_of(lines, base),
        description=doc.get("description", ""), dry_run=bool(doc.get("dry_run", False)),
        principals=tuple(src.get("principals", ())), namespaces=tuple(src.get("namespaces", ())),
        ip_ranges=tuple(src.get("ip_ranges", ())), authenticated=src.get("authenticated"),
        issuers=tuple(src.get("issuers", ())), principal_kinds=tuple(dict.fromkeys(src.get("principal_kinds", ()))),
        services=tuple(dst.get("services", ())), methods=methods, paths=tuple(dst.get("paths", ())),
        claims=claims, time=tw, risk=risk,
    )


def parse_policy_text(text: str, file: str) -> tuple[list[Policy], list[Issue]]:
    """Policies in one file and every problem found; a policy with an error is left out."""
    docs, issues = load_yaml_documents(text, file)
    policies = []
    for doc, lines in docs:
        doc_issues = _schema_issues(doc, lines, file)
        if doc_issues:
            issues.extend(doc_issues)
            continue
        rule_issues: list[Issue] = []
        seen: dict[str, int] = {}
        rules = []
        for i, rdoc in enumerate(doc["rules"]):
            line = line_of(lines, ("rules", i))
            if rdoc["name"] in seen:
                rule_issues.append(Issue(file, line, f"rule name {rdoc['name']!r} already used at line {seen[rdoc['name']]}"))
            seen.setdefault(rdoc["name"], line)
            rules.append(_rule(rdoc, doc["name"], i, lines, file, rule_issues))
        issues.extend(rule_issues)
        if not rule_issues:
            policies.append(Policy(doc["name"], file, doc.get("description", ""), tuple(rules)))
    return policies, issues


def policy_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, and every ``*.yaml``/``*.yml`` under named directories (sorted).

    Files whose first document is not ``kind: Policy`` (test cases, trust files) are skipped
    when found in a directory, so examples can live beside the policies they test.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.suffix in POLICY_SUFFIXES and q.is_file()):
                head = f.read_text(encoding="utf-8", errors="replace")[:4096]
                if re.search(r"^kind:\s*Policy\s*$", head, re.M):
                    out.append(f)
        else:
            out.append(p)
    return out


def load_policy_set(paths: Iterable[str | Path], *, strict: bool = True) -> PolicySet:
    """Read, validate and type every policy; raise ``PolicyError`` with all problems if any."""
    files = policy_files(paths)
    issues: list[Issue] = []
    policies: list[Policy] = []
    digest = hashlib.sha256()
    if not files:
        raise PolicyError([Issue(",".join(map(str, paths)) or "<none>", 0, "no policy files found")])
    names: dict[str, str] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except OSError as exc:
            issues.append(Issue(str(f), 0, f"cannot read: {exc}"))
            continue
        digest.update(str(f).encode() + b"\0" + text.encode() + b"\0")
        found, problems = parse_policy_text(text, str(f))
        issues.extend(problems)
        for pol in found:
            if pol.name in names:
                issues.append(Issue(str(f), 1, f"policy name {pol.name!r} already defined in {names[pol.name]}"))
                continue
            names[pol.name] = str(f)
            policies.append(pol)
    if issues and strict:
        raise PolicyError(issues)
    return PolicySet(tuple(policies), digest.hexdigest()[:16], tuple(map(str, files)), tuple(issues))


def policy_set_from_text(text: str, file: str = "<memory>") -> PolicySet:
    policies, issues = parse_policy_text(text, file)
    if issues:
        raise PolicyError(issues)
    return PolicySet(tuple(policies), hashlib.sha256(text.encode()).hexdigest()[:16], (file,))
