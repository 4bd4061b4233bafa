"""A rule's sample events: expanded, evaluated in memory, checked against what they must do.

Every shipped rule carries ``ztsoc.samples.match`` (events on which it must raise an alert)
and ``ztsoc.samples.near_miss`` (close, but it must not). Writing fifty port-scan flows by
hand would hide the point of a sample, so a sample event may say ``_repeat: N`` and
``_every: 2s``: N copies, each ``_every`` later, with ``{i}``, ``{i+K}`` or ``{i%K}`` in string
values replaced by the copy number (fields listed in ``_ints`` become integers).
``soc rules test`` and ``tests/test_province_rules.py`` both run this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from detections.sigma.engine import compile_ruleset, evaluate
from detections.sigma.loader import LoadedRule, RuleSet
from detections.sigma.loader import closure as referenced_closure
from eventstore.store import Doc
from eventstore.timeutil import from_iso, parse_duration, to_iso

_PLACEHOLDER = re.compile(r"\{i(?:([%+])(\d+))?\}")


def _fill(text: str, i: int) -> str:
    def sub(m: re.Match[str]) -> str:
        op, k = m.group(1), m.group(2)
        if op == "+":
            return str(i + int(k))
        if op == "%":
            return str(i % int(k))
        return str(i)

    return _PLACEHOLDER.sub(sub, text)


def _every(value: Any) -> timedelta:
    text = str(value)
    if text.endswith("ms"):
        return timedelta(milliseconds=int(text[:-2]))
    return parse_duration(text)


def expand(samples: Iterable[Mapping[str, Any]], prefix: str = "sample") -> list[Doc]:
    """Sample templates -> concrete events (each with ``event.id`` and ``@timestamp``)."""
    out: list[Doc] = []
    for template in samples:
        repeat = int(template.get("_repeat", 1))
        step = _every(template.get("_every", "1s"))
        ints = set(template.get("_ints") or ())
        base = from_iso(str(template["@timestamp"]))
        for i in range(repeat):
            doc: Doc = {}
            for key, value in template.items():
                if key.startswith("_"):
                    continue
                if isinstance(value, str):
                    value = _fill(value, i)
                    if key in ints:
                        value = int(value)
                doc[key] = value
            doc["@timestamp"] = to_iso(base + step * i)
            doc.setdefault("event.kind", "event")
            doc.setdefault("event.id", f"{prefix}-{len(out):05d}")
            out.append(doc)
    return out


def closure(ruleset: RuleSet, rule: LoadedRule) -> RuleSet:
    """The rule and every rule it references (transitively): what evaluating it needs."""
    return referenced_closure(ruleset, [rule])


@dataclass
class SampleResult:
    rule: str
    kind: str  # match | near_miss
    events: int
    alerts: list[Doc]
    ok: bool
    reason: str = ""
    problems: list[str] = field(default_factory=list)


def alerts_of(ruleset: RuleSet, rule: LoadedRule, events: list[Doc], pipeline: str = "ztsoc") -> tuple[list[Doc], list[str]]:
    """Evaluate ``rule`` (with what it references) over ``events`` in memory; its alerts only."""
    cs = compile_ruleset(closure(ruleset, rule), pipeline)
    problems = [f"{p.rule}: {p.reason}" for p in cs.problems]
    if rule.key not in cs.rules:
        return [], problems or [f"{rule.key}: did not compile"]
    docs, _ = evaluate(cs, events)
    return [d for d in docs if d.get("rule.id") == rule.key], problems


def check_samples(ruleset: RuleSet, rule: LoadedRule, pipeline: str = "ztsoc") -> list[SampleResult]:
    """Run both sample sets of a rule; a rule without samples yields a failed result saying so."""
    results: list[SampleResult] = []
    samples = rule.meta.samples
    for kind in ("match", "near_miss"):
        templates = samples.get(kind) or []
        if not templates:
            results.append(SampleResult(rule.key, kind, 0, [], False, f"no {kind} samples"))
            continue
        try:
            events = expand(templates, prefix=f"{rule.key}-{kind}")
        except (KeyError, ValueError, TypeError) as exc:
            results.append(SampleResult(rule.key, kind, 0, [], False, f"bad sample: {exc}"))
            continue
        alerts, problems = alerts_of(ruleset, rule, events, pipeline)
        if kind == "match":
            ok, reason = _check_match(rule, alerts)
        else:
            ok = not alerts
            reason = "" if ok else f"fired {len(alerts)} alert(s) on the near miss"
        results.append(SampleResult(rule.key, kind, len(events), alerts, ok and not problems,
                                    reason or "; ".join(problems), problems))
    return results


def _check_match(rule: LoadedRule, alerts: list[Doc]) -> tuple[bool, str]:
    if not alerts:
        return False, "did not fire on the match sample"
    expect = rule.meta.expect
    if "count" in expect and len(alerts) != int(expect["count"]):
        return False, f"expected {expect['count']} alert(s), got {len(alerts)}"
    for name, value in (expect.get("group") or {}).items():
        if not any(str(a.get(name)) == str(value) for a in alerts):
            return False, f"no alert with {name}={value}"
    return True, ""


def load_events(path: Path) -> list[Doc]:
    """Events to test a rule on: JSON lines, a JSON array, or a YAML list (flat ECS dicts)."""
    import json

    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if path.suffix in (".yml", ".yaml"):
        from eventstore.yamlfile import load

        data = load(text) or []
        docs = list(data) if isinstance(data, list) else [data]
    elif stripped.startswith("["):
        docs = json.loads(text)
    else:
        docs = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc.msg}") from None
    out: list[Doc] = []
    for n, d in enumerate(docs, 1):
        if not isinstance(d, dict) or "@timestamp" not in d:
            raise ValueError(f"{path}: event {n} has no @timestamp")
        if any(k.startswith("_") for k in d):
            out.extend(expand([d], prefix=f"{path.stem}-{n}"))
            continue
        d.setdefault("event.id", f"{path.stem}-{n}")
        out.append(d)
    return out
