"""``soc policy lint``: schema and semantic errors with file and line, then findings that load
fine but are probably mistakes: rules shadowed by an earlier rule of the same effect,
allow rules no request can reach because a deny rule covers them, and allows so broad
they grant anyone (or any service) everything.

Coverage is decided conservatively, per condition (a rule with a condition the other
lacks never covers it; globs cover only literal prefixes ending in ``**``), so a finding
is always true; some real overlaps go unreported rather than reporting false ones.

A deny rule on ``/admin/**`` leaves ``/admin`` itself allowed (the glob needs a segment
below it): lint says so and suggests ``/admin/...``, which covers both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

from policy.language import SUBTREE, Issue, PolicyError, Rule, glob_to_regex, is_glob, load_policy_set

ANY = ("*", "**", "/**", "/*")


def _pattern_covers(a: str, b: str) -> bool:
    import re

    if a == b or a == "**":
        return True
    if not is_glob(b):
        return re.fullmatch(glob_to_regex(a), b) is not None
    if a.endswith("**"):
        prefix = a[:-2]
        return not is_glob(prefix) and b.startswith(prefix)
    if a.endswith(SUBTREE):
        base = a[: -len(SUBTREE)]
        return not is_glob(base) and (b.startswith(base + "/") or b == base + SUBTREE)
    return False


def bare_prefix(pattern: str) -> str | None:
    """``/admin`` for ``/admin/**`` or ``/admin/*``: the literal prefix such a glob leaves out."""
    for tail in ("/**", "/*"):
        if pattern.endswith(tail):
            base = pattern[: -len(tail)]
            if base and not is_glob(base):
                return base
    return None


def non_canonical_path(pattern: str) -> str | None:
    """Why a path pattern can never match (requests are matched in canonical form), or ``None``."""
    from policy.canonical import Refused, canonical_path

    if pattern in ("*", "**"):
        return None
    sample = pattern[: -len(SUBTREE)] or "/" if pattern.endswith(SUBTREE) else pattern
    sample = sample.replace("**", "x").replace("*", "x").replace("?", "x")
    try:
        canon = canonical_path(sample)
    except Refused as exc:
        return str(exc)
    if canon != sample:
        return f"requests are matched as {canon!r}"
    return None


def uncovered_prefixes(rule: Rule) -> list[str]:
    """Bare prefixes a deny rule's path globs leave out while no other pattern of it covers them."""
    out = []
    for p in rule.paths:
        base = bare_prefix(p)
        if base is not None and not any(_pattern_covers(q, base) for q in rule.paths):
            out.append(base)
    return list(dict.fromkeys(out))


def _names_cover(a: tuple[str, ...], b: tuple[str, ...], *, any_values: tuple[str, ...] = ("**",)) -> bool:
    if not a:
        return True
    if not b:
        return any(x in any_values for x in a)
    return all(any(_pattern_covers(x, y) for x in a) for y in b)


def _ips_cover(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a:
        return True
    if not b:
        return False
    nets_a = [ipaddress.ip_network(x, strict=False) for x in a]
    for y in b:
        ny = ipaddress.ip_network(y, strict=False)
        if not any(na.version == ny.version and ny.subnet_of(na) for na in nets_a):  # type: ignore[arg-type]
            return False
    return True


def covers(a: Rule, b: Rule) -> bool:
    """Every request ``b`` matches is matched by ``a`` (conservatively)."""
    if a.methods and (not b.methods or not set(b.methods) <= set(a.methods)):
        return False
    if a.authenticated is not None and a.authenticated != b.authenticated:
        return False
    if a.claims and not set(a.claims) <= set(b.claims):
        return False
    if a.time is not None and a.time != b.time:
        return False
    if a.risk is not None and a.risk != b.risk:
        return False
    return (
        _names_cover(a.services, b.services, any_values=("*", "**"))
        and _names_cover(a.paths, b.paths, any_values=("**", "/**"))
        and _names_cover(a.principals, b.principals)
        and _names_cover(a.namespaces, b.namespaces, any_values=("*", "**"))
        and _names_cover(a.issuers, b.issuers, any_values=("*", "**"))
        and (not a.principal_kinds or (bool(b.principal_kinds) and set(b.principal_kinds) <= set(a.principal_kinds)))
        and _ips_cover(a.ip_ranges, b.ip_ranges)
    )


def _any_source(r: Rule) -> bool:
    return (not r.principals or any(p in ("*", "**") for p in r.principals)) and not r.namespaces \
        and not r.issuers and not r.principal_kinds and not r.ip_ranges and not r.claims and r.authenticated is not True


def _any_service(r: Rule) -> bool:
    return not r.services or any(s in ("*", "**") for s in r.services)


def _any_path(r: Rule) -> bool:
    return not r.paths or any(p in ANY for p in r.paths)


def findings(rules: Sequence[Rule]) -> list[Issue]:
    out: list[Issue] = []
    for i, b in enumerate(rules):
        if b.effect == "allow" and not b.dry_run:
            if _any_service(b) and _any_source(b):
                out.append(Issue(b.file, b.line, f"{b.id}: allows anyone on every service", "warning"))
            elif _any_service(b):
                out.append(Issue(b.file, b.line, f"{b.id}: allows on every service (no destination.services)",
                                 "warning"))
            elif _any_source(b) and _any_path(b) and not b.methods and b.risk is None and b.time is None:
                out.append(Issue(b.file, b.line,
                                 f"{b.id}: allows anyone every method on every path of {', '.join(b.services)}",
                                 "warning"))
        for p in b.paths:
            why = non_canonical_path(p)
            if why is not None:
                out.append(Issue(b.file, b.line, f"{b.id}: path {p!r} can never match a request: {why}", "warning"))
        if b.effect == "deny":
            for base in uncovered_prefixes(b):
                out.append(Issue(b.file, b.line, f"{b.id}: denies what is below {base} but not {base} itself; "
                                 f"write {base}/... to deny both", "warning"))
        for a in rules[:i]:
            if a.effect == b.effect and a.dry_run == b.dry_run and covers(a, b):
                out.append(Issue(b.file, b.line, f"{b.id}: shadowed by {a.id} ({a.where}); it can never decide",
                                 "warning"))
                break
        if b.effect == "allow" and not b.dry_run:
            for a in rules:
                if a.effect == "deny" and not a.dry_run and covers(a, b):
                    out.append(Issue(b.file, b.line,
                                     f"{b.id}: unreachable, every request it allows is denied by {a.id} ({a.where})",
                                     "warning"))
                    break
    return out


def lint(paths: Iterable[str | Path]) -> list[Issue]:
    """Errors first (a set with errors would not load), then findings on what did load."""
    try:
        ps = load_policy_set(paths, strict=False)
    except PolicyError as exc:
        return list(exc.issues)
    return list(ps.warnings) + findings(ps.rules)
