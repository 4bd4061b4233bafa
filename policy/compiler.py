"""Policies compiled once into per-service rule buckets of precompiled checks.

A decision looks up its destination service in a dict and walks only that bucket (rules
naming the service exactly, plus rules whose service is a glob or absent, in file order),
so its cost depends on the rules for that service, not on the size of the policy set.
Each rule is a tuple of small closures over sets and compiled regexes; a check answers
``True``, ``False``, or a string when an attribute the rule needs is unknown (the engine
turns that into a fail-closed outcome with the string as the reason).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from policy.canonical import fold_case
from policy.language import LEVEL_RANK, PolicySet, Rule, glob_to_regex, is_glob
from policy.request import Request, principal_kind

CheckResult = bool | str
Check = Callable[[Request], CheckResult]

MAX_GLOB_BUCKETS = 10_000


def _path_check(values: tuple[str, ...], *, fold: bool) -> Check:
    """Paths (canonical, ``policy.canonical``): a deny rule (``fold``) matches any case variant,
    an allow rule only the spelling it names, so case can turn a request into a deny, never an allow.

    A deny rule's exact and glob paths are one regex over ``fold_case`` of each (``policy.canonical``:
    ``/adm%C4%B1n`` (dotless i) and ``/ADM%C4%B0N`` are ``/admin``, ``/stra%C3%9Fe`` is ``/strasse``),
    matched against the folded request path (an ASCII path as it is, with ``re.IGNORECASE``: its
    fold is its lower case). Two matchers, one per kind of path, once folded differently, and a
    request a glob deny caught slipped past the exact one.
    """
    if not fold:
        return _names_check(values, "path")
    forms = dict.fromkeys(fold_case(v) for v in values)
    match = re.compile("(?:" + "|".join(glob_to_regex(f) for f in forms) + r")\Z", re.IGNORECASE).match

    def check(req: Request) -> CheckResult:
        value = req.path
        return match(value if value.isascii() else fold_case(value)) is not None
    return check


def _names_check(values: tuple[str, ...], attr: str) -> Check:
    exact = frozenset(v for v in values if not is_glob(v))
    globs = [v for v in values if is_glob(v)]
    rx = re.compile("(?:" + "|".join(glob_to_regex(g) for g in globs) + r")\Z") if globs else None
    match = rx.match if rx is not None else None

    if match is None:
        def check(req: Request) -> CheckResult:
            return getattr(req, attr) in exact
    else:
        def check(req: Request) -> CheckResult:
            value = getattr(req, attr)
            return value is not None and (value in exact or match(value) is not None)
    return check


def _ip_check(ranges: tuple[str, ...]) -> Check:
    """An unknown source address (none, or not an address) is unknown, not "outside the ranges":
    a deny rule naming ranges then fails closed, an allow rule is not applied."""
    nets = [ipaddress.ip_network(r, strict=False) for r in ranges]

    def check(req: Request) -> CheckResult:
        ip = req.ip()
        if ip is None:
            return "the source address is unknown"
        return any(ip.version == n.version and ip in n for n in nets)
    return check


def _method_check(methods: tuple[str, ...]) -> Check:
    allowed = frozenset(methods)
    return lambda req: req.method in allowed


def _claim_check(name: str, any_of: frozenset[str], all_of: frozenset[str]) -> Check:
    def check(req: Request) -> CheckResult:
        have = req.claim_set(name)
        if any_of and any_of.isdisjoint(have):
            return False
        return all_of <= have
    return check


def _time_check(days: frozenset[int], start: object, end: object, tz: str) -> Check:
    zone = ZoneInfo(tz)

    def check(req: Request) -> CheckResult:
        local: datetime = req.now().astimezone(zone)
        if start is None:
            return local.weekday() in days
        t = local.time()
        if start <= end:  # type: ignore[operator]
            return local.weekday() in days and start <= t < end  # type: ignore[operator]
        # A window across midnight belongs to the day it started on.
        if t >= start:  # type: ignore[operator]
            return local.weekday() in days
        if t < end:  # type: ignore[operator]
            return (local - timedelta(days=1)).weekday() in days
        return False
    return check


def _risk_check(max_open: int | None, max_level: str | None, min_open: int | None, min_level: str | None) -> Check:
    max_rank = LEVEL_RANK[max_level] if max_level else None
    min_rank = LEVEL_RANK[min_level] if min_level else None

    def check(req: Request) -> CheckResult:
        risk = req.risk
        if risk is None:
            return f"risk of {req.principal or req.source_ip or 'the source'} is unknown (alert store unavailable)"
        if max_open is not None and risk.open_alerts > max_open:
            return False
        if max_rank is not None and risk.max_rank > max_rank:
            return False
        if min_open is not None and risk.open_alerts < min_open:
            return False
        return not (min_rank is not None and risk.max_rank < min_rank)
    return check


def compile_checks(rule: Rule) -> tuple[tuple[str, Check], ...]:
    """The rule's conditions in cheap-first order; the service is matched by the index."""
    checks: list[tuple[str, Check]] = []
    if rule.methods:
        checks.append(("method", _method_check(rule.methods)))
    if rule.paths:
        checks.append(("path", _path_check(rule.paths, fold=rule.effect == "deny")))
    if rule.authenticated is not None:
        want = rule.authenticated
        checks.append(("authenticated", lambda req: req.authenticated is want))
    if rule.principals:
        checks.append(("principal", _names_check(rule.principals, "principal")))
    if rule.namespaces:
        checks.append(("namespace", _names_check(rule.namespaces, "namespace")))
    if rule.issuers:
        checks.append(("issuer", _names_check(rule.issuers, "issuer")))
    if rule.principal_kinds:
        kinds = frozenset(rule.principal_kinds)
        checks.append(("principal_kind", lambda req: principal_kind(req.principal) in kinds))
    if rule.ip_ranges:
        checks.append(("source_ip", _ip_check(rule.ip_ranges)))
    for name, cond in rule.claims:
        checks.append((f"claims.{name}", _claim_check(name, cond.any, cond.all)))
    if rule.time is not None:
        tw = rule.time
        checks.append(("time", _time_check(tw.days, tw.start, tw.end, tw.timezone)))
    if rule.risk is not None:
        r = rule.risk
        checks.append(("risk", _risk_check(r.max_open_alerts, r.max_level, r.min_open_alerts, r.min_level)))
    return tuple(checks)


@dataclass(slots=True)
class CompiledRule:
    rule: Rule
    checks: tuple[tuple[str, Check], ...]
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.rule.id

    def match(self, req: Request) -> CheckResult:
        """``True`` when every condition holds; ``False``; or the unknown-attribute reason."""
        for _, check in self.checks:
            result = check(req)
            if result is not True:
                return result
        return True

    def explain(self, req: Request) -> list[tuple[str, CheckResult]]:
        return [(name, check(req)) for name, check in self.checks]


@dataclass(slots=True)
class Bucket:
    """The rules that can apply to one destination service, split by how they act."""

    denies: tuple[CompiledRule, ...] = ()
    allows: tuple[CompiledRule, ...] = ()
    dry_denies: tuple[CompiledRule, ...] = ()
    dry_allows: tuple[CompiledRule, ...] = ()
    needs_risk: bool = False


def service_matcher(services: tuple[str, ...]) -> Callable[[str], bool]:
    if not services:
        return lambda s: True
    exact = frozenset(v for v in services if not is_glob(v))
    globs = [v for v in services if is_glob(v)]
    rx = re.compile("(?:" + "|".join(glob_to_regex(g) for g in globs) + r")\Z") if globs else None
    return lambda s: s in exact or (rx is not None and rx.match(s) is not None)


@dataclass
class CompiledPolicy:
    policy_set: PolicySet
    rules: list[CompiledRule]
    _exact: dict[str, Bucket] = field(default_factory=dict)
    _floating: list[tuple[CompiledRule, Callable[[str], bool]]] = field(default_factory=list)
    _glob_cache: dict[str, Bucket] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.policy_set.version

    def bucket(self, service: str) -> Bucket:
        b = self._exact.get(service)
        if b is not None:
            return b
        b = self._glob_cache.get(service)
        if b is None:
            b = _bucket([cr for cr, m in self._floating if m(service)])
            if len(self._glob_cache) >= MAX_GLOB_BUCKETS:
                self._glob_cache.clear()  # unknown service names are attacker-chosen: bound the memory
            self._glob_cache[service] = b
        return b

    def services(self) -> list[str]:
        return sorted(self._exact)

    def rule(self, rule_id: str) -> CompiledRule | None:
        return next((cr for cr in self.rules if cr.id == rule_id), None)


def _bucket(rules: list[CompiledRule]) -> Bucket:
    return Bucket(
        denies=tuple(r for r in rules if r.rule.effect == "deny" and not r.rule.dry_run),
        allows=tuple(r for r in rules if r.rule.effect == "allow" and not r.rule.dry_run),
        dry_denies=tuple(r for r in rules if r.rule.effect == "deny" and r.rule.dry_run),
        dry_allows=tuple(r for r in rules if r.rule.effect == "allow" and r.rule.dry_run),
        needs_risk=any(r.rule.risk is not None for r in rules),
    )


def compile_policy(policy_set: PolicySet) -> CompiledPolicy:
    rules = [CompiledRule(r, compile_checks(r)) for r in policy_set.rules]
    exact_names = {s for cr in rules for s in cr.rule.services if not is_glob(s)}
    matchers = [(cr, service_matcher(cr.rule.services)) for cr in rules]
    floating = [(cr, m) for cr, m in matchers if not cr.rule.services or any(is_glob(s) for s in cr.rule.services)]
    exact = {name: _bucket([cr for cr, m in matchers if m(name)]) for name in sorted(exact_names)}
    return CompiledPolicy(policy_set, rules, exact, floating)
