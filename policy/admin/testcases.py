"""``soc policy test CASES.yaml``: requests with their expected decisions, like ``opa test``.

A cases file names the policies it tests (``policies:``, relative to the file; default:
the file's own directory) and lists ``cases``: ``name``, ``request`` (the ``/v1/decide``
shape, with a ``risk`` the caller has at that moment, default none: the rule of
``policy.admin.offline``), ``expect`` (``allow``, ``deny`` or ``would_deny``) and optionally
``rule``, a rule id that must be among the deciding rules, and ``description``.

A key the format does not have (a misspelt ``principle:``, a ``time:`` beside ``request:``
instead of in it) is refused with its file and line: silently ignoring it would drop a
condition and let the case pass for the wrong reason. A failing case names the condition
that decided it (``explain``'s trace of the rule it expected, or of the rules that came
closest), and the coverage report lists the rules no case matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy.admin.explain import Explanation, explain
from policy.admin.offline import offline_request
from policy.engine import Engine
from policy.language import Issue, line_of, load_yaml_documents
from policy.request import REQUEST_FIELDS, Decision

EXPECTATIONS = ("allow", "deny", "would_deny")
CASE_KEYS = ("name", "request", "expect", "rule", "description")
FILE_KEYS = ("policies", "cases")


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
    #: Rules whose every condition held for this case's request (deciding or not).
    matched: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "line": self.line, "passed": self.passed, "expected": self.expected,
                "got": self.got, "rules": list(self.rules), "reasons": list(self.reasons), "problem": self.problem,
                "matched": list(self.matched)}


@dataclass(frozen=True)
class CasesFile:
    path: Path
    policies: list[Path]
    cases: list[tuple[int, dict[str, Any]]]
    issues: list[Issue]


def _did_you_mean(key: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_keys(path: Path, data: dict[str, Any], lines: dict[Any, int]) -> list[Issue]:
    """Keys the cases format does not have, at the file, case and request level, each with its line."""
    issues = [Issue(str(path), line_of(lines, (k,)), f"unknown key '{k}'{_did_you_mean(str(k), FILE_KEYS)} "
                    f"(a cases file has: {', '.join(FILE_KEYS)})") for k in data if k not in FILE_KEYS]
    request_keys = sorted(REQUEST_FIELDS)
    for i, case in enumerate(data.get("cases") or []):
        if not isinstance(case, dict):
            continue
        label = f"case '{case.get('name')}'" if isinstance(case.get("name"), str) else f"case #{i + 1}"
        for k in case:
            if k in CASE_KEYS:
                continue
            hint = (" (it belongs under request:)" if k in REQUEST_FIELDS
                    else _did_you_mean(str(k), CASE_KEYS) or f" (a case has: {', '.join(CASE_KEYS)})")
            issues.append(Issue(str(path), line_of(lines, ("cases", i, k)), f"{label}: unknown key '{k}'{hint}"))
        request = case.get("request")
        if isinstance(request, dict):
            for k in request:
                if k not in REQUEST_FIELDS:
                    hint = _did_you_mean(str(k), request_keys) or f" (a request has: {', '.join(request_keys)})"
                    issues.append(Issue(str(path), line_of(lines, ("cases", i, "request", k)),
                                        f"{label}: unknown request key '{k}'{hint}"))
    return issues


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
    return CasesFile(path, policies, cases, unknown_keys(path, data, lines))


def _outcome(d: Decision) -> str:
    return "would_deny" if d.action == "would_deny" else ("allow" if d.allow else "deny")


def _trace_words(ex: Explanation, rule_id: str) -> str | None:
    for t in ex.traces:
        if t.rule == rule_id:
            if t.matched:
                return f"{t.rule} matched"
            return f"{t.rule} ({t.where}) failed on {t.failed}" + (f": {t.detail}" if t.detail else "")
    return None


def why(ex: Explanation, expected: str, got: str, rule: str | None) -> str:
    """The condition behind a wrong outcome, from the engine's own per-rule trace."""
    d = ex.decision
    if rule:
        said = _trace_words(ex, rule)
        return said if said is not None else f"no rule {rule} in these policies"
    if got == "deny" and d.rules:
        return f"denied by {', '.join(d.rules)}: {d.reason}"
    if got == "deny":
        misses = ex.near_misses[:3]
        return "no allow rule matched; closest: " + "; ".join(misses) if misses else \
            f"no allow rule for service {ex.request.service!r}"
    # allowed (or would_deny) where a deny was expected: what allowed it, and why no deny applied
    denies = [t for t in ex.traces if t.effect == "deny" and not t.matched and t.failed != "service"]
    out = f"allowed by {', '.join(d.rules) or 'no rule'}"
    if denies:
        out += "; deny rules that did not apply: " + "; ".join(
            f"{t.rule} failed on {t.failed}" + (f": {t.detail}" if t.detail else "") for t in denies[:3])
    return out


def run_case(engine: Engine, line: int, case: Any, index: int) -> CaseResult:
    name = str(case.get("name") or f"case #{index + 1}") if isinstance(case, dict) else f"case #{index + 1}"
    if not isinstance(case, dict):
        return CaseResult(name, line, False, "?", "error", (), (), "a case must be a mapping")
    expected = str(case.get("expect", ""))
    if expected not in EXPECTATIONS:
        return CaseResult(name, line, False, expected, "error", (), (), f"expect must be one of {EXPECTATIONS}")
    request = case.get("request") or {}
    try:
        ex = explain(engine, offline_request(request, store_risk=False))
    except (ValueError, TypeError) as exc:
        return CaseResult(name, line, False, expected, "error", (), (), f"bad request: {exc}")
    decision = ex.decision
    got = _outcome(decision)
    rules = decision.rules + decision.dry_run_rules
    problem = ""
    rule = str(case["rule"]) if case.get("rule") else None
    if got != expected:
        problem = f"expected {expected}, got {got}: {why(ex, expected, got, rule)}"
    elif rule and rule not in rules:
        problem = f"expected rule {rule} among {list(rules) or 'none'}: {why(ex, expected, got, rule)}"
    matched = tuple(t.rule for t in ex.traces if t.matched)
    return CaseResult(name, line, not problem, expected, got, rules, decision.reasons, problem, matched)


def run_cases(path: str | Path, policies: Sequence[str | Path] | None = None) -> tuple[list[CaseResult], list[Issue]]:
    """Every case's result; file problems (unknown keys, a policy that does not load) as issues."""
    results, issues, _ = run_cases_with_engine(path, policies)
    return results, issues


def run_cases_with_engine(path: str | Path, policies: Sequence[str | Path] | None = None,
                          ) -> tuple[list[CaseResult], list[Issue], Engine | None]:
    from policy.language import PolicyError

    cf = read_cases(path)
    if cf.issues:
        return [], cf.issues, None
    try:
        engine = Engine.from_paths(list(policies) if policies else cf.policies)
    except PolicyError as exc:
        return [], exc.issues, None
    return [run_case(engine, line, case, i) for i, (line, case) in enumerate(cf.cases)], [], engine


def uncovered_rules(engine: Engine, results: Sequence[CaseResult]) -> list[tuple[str, str]]:
    """``(rule id, where)`` of each rule no case's request matched, in policy order."""
    seen = {r for res in results for r in res.matched}
    return [(cr.rule.id, cr.rule.where) for cr in engine.policy.rules if cr.rule.id not in seen]
