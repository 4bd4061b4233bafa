"""``soc policy test CASES.yaml``: requests with their expected decisions, like ``opa test``.

A cases file names the policies it tests (``policies:``, relative to the file; default:
the file's own directory) and lists ``cases``: ``name``, ``request`` (the ``/v1/decide``
shape, with a ``risk`` the caller has at that moment, default none), ``expect``
(``allow``, ``deny`` or ``would_deny``) and optionally ``rule``, a rule id that must be
among the deciding rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy.engine import Engine
from policy.language import Issue, line_of, load_yaml_documents
from policy.request import Decision, Request, Risk

EXPECTATIONS = ("allow", "deny", "would_deny")


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    line: int
    passed: bool
    expected: str
    got: str
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "line": self.line, "passed": self.passed, "expected": self.expected,
                "got": self.got, "rules": list(self.rules), "reasons": list(self.reasons), "problem": self.problem}


@dataclass(frozen=True)
class CasesFile:
    path: Path
    policies: list[Path]
    cases: list[tuple[int, dict[str, Any]]]
    issues: list[Issue]


def read_cases(path: str | Path) -> CasesFile:
    path = Path(path)
    docs, issues = load_yaml_documents(path.read_text(encoding="utf-8"), str(path))
    if issues:
        return CasesFile(path, [], [], issues)
    if not docs or not isinstance(docs[0][0], dict) or not isinstance(docs[0][0].get("cases"), list):
        return CasesFile(path, [], [], [Issue(str(path), 1, "expected a mapping with a 'cases' list")])
    data, lines = docs[0]
    pol = data.get("policies", ".")
    pol_list = pol if isinstance(pol, list) else [pol]
    policies = [(path.parent / str(p)) for p in pol_list]
    cases = [(line_of(lines, ("cases", i)), c) for i, c in enumerate(data["cases"])]
    return CasesFile(path, policies, cases, [])


def _outcome(d: Decision) -> str:
    return "would_deny" if d.action == "would_deny" else ("allow" if d.allow else "deny")


def run_case(engine: Engine, line: int, case: Any, index: int) -> CaseResult:
    name = str(case.get("name") or f"case #{index + 1}") if isinstance(case, dict) else f"case #{index + 1}"
    if not isinstance(case, dict):
        return CaseResult(name, line, False, "?", "error", (), (), "a case must be a mapping")
    expected = str(case.get("expect", ""))
    if expected not in EXPECTATIONS:
        return CaseResult(name, line, False, expected, "error", (), (), f"expect must be one of {EXPECTATIONS}")
    try:
        req = Request.from_dict(case.get("request") or {})
    except (ValueError, TypeError) as exc:
        return CaseResult(name, line, False, expected, "error", (), (), f"bad request: {exc}")
    if req.risk is None:
        req.risk = Risk()
    decision = engine.decide(req)
    got = _outcome(decision)
    rules = decision.rules + decision.dry_run_rules
    problem = ""
    if got != expected:
        problem = f"expected {expected}, got {got}"
    elif case.get("rule") and case["rule"] not in rules:
        problem = f"expected rule {case['rule']} among {list(rules) or 'none'}"
    return CaseResult(name, line, not problem, expected, got, rules, decision.reasons, problem)


def run_cases(path: str | Path, policies: Sequence[str | Path] | None = None) -> tuple[list[CaseResult], list[Issue]]:
    """Every case's result; file problems (including a policy that does not load) as issues."""
    from policy.language import PolicyError

    cf = read_cases(path)
    if cf.issues:
        return [], cf.issues
    try:
        engine = Engine.from_paths(list(policies) if policies else cf.policies)
    except PolicyError as exc:
        return [], exc.issues
    return [run_case(engine, line, case, i) for i, (line, case) in enumerate(cf.cases)], []
