"""Load Sigma rules (SigmaHQ format) from the shipped folder and the folders a user names.

Parsing is pySigma's (``SigmaCollection``); what is ours is the bookkeeping a SOC needs on
top: every file that cannot be used becomes a :class:`RuleProblem` naming the file, the
rule and the reason, and loading goes on with the rest; correlation rules are resolved
across all folders together (a correlation in one folder may reference a rule in
another); and the province's custom fields (``ztsoc:`` in a rule: investigation guide,
response, suppression window, entity fields, sample events) are read into
:class:`RuleMeta`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventstore.timeutil import parse_duration

if TYPE_CHECKING:  # pySigma and YAML are imported where files are parsed: a set read from the
    # compiled-rule cache has rule heads and metadata only, and parses a rule's file on demand
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

    AnyRule = SigmaRule | SigmaCorrelationRule

#: a top-level ``action:`` key: the file is a Sigma collection, its documents build on each other
_COLLECTION = re.compile(r"^action[ \t]*:", re.MULTILINE)

#: The rules ztsoc ships (the province's own).
SHIPPED_RULES = Path(__file__).resolve().parent.parent / "rules"


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """A rule (or file) that cannot be used, and why."""

    path: str
    rule: str | None
    stage: str  # load | resolve | compile | convert | samples
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rule": self.rule, "stage": self.stage, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """The ``ztsoc:`` block of a rule: what the analyst reads and what CI runs."""

    guide: str | None = None
    response: str | None = None
    #: alerts of this rule for the same entity closer than this merge into one (seconds)
    suppress: float | None = None
    #: fields naming the entity of an alert, first present wins (default: the group-by fields)
    entity: tuple[str, ...] = ()
    #: "match": events on which the rule must fire; "near_miss": events on which it must not
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: {"count": N, "group": {...}} expected of the "match" sample (optional)
    expect: dict[str, Any] = field(default_factory=dict)
    #: novelty: alert only on a combination of these fields never seen before (after ``learn`` seconds)
    baseline_fields: tuple[str, ...] = ()
    baseline_learn: float = 0.0

    @classmethod
    def from_rule(cls, rule: AnyRule) -> RuleMeta:
        raw = rule.custom_attributes.get("ztsoc") if rule.custom_attributes else None
        if not isinstance(raw, dict):
            return cls()
        suppress = raw.get("suppress")
        samples = raw.get("samples") or {}
        if not isinstance(samples, dict):
            raise ValueError("ztsoc.samples must be a mapping of 'match' / 'near_miss' to event lists")
        entity = raw.get("entity") or ()
        baseline = raw.get("baseline") or {}
        if not isinstance(baseline, dict):
            raise ValueError("ztsoc.baseline must be a mapping with 'fields' and 'learn'")
        learn = baseline.get("learn")
        return cls(
            guide=_text(raw.get("guide")),
            response=_text(raw.get("response")),
            suppress=parse_duration(str(suppress)).total_seconds() if suppress else None,
            entity=tuple([entity] if isinstance(entity, str) else entity),
            samples={str(k): list(v or []) for k, v in samples.items()},
            expect=dict(raw.get("expect") or {}),
            baseline_fields=tuple(baseline.get("fields") or ()),
            baseline_learn=parse_duration(str(learn)).total_seconds() if learn else 0.0,
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value).strip()


@dataclass(frozen=True, slots=True)
class RuleHead:
    """What lists and alerts need of a rule without parsing it (kept by the compiled-rule cache)."""

    key: str
    uuid: str | None
    title: str
    level: str
    tags: tuple[str, ...]
    is_correlation: bool

    @classmethod
    def of(cls, rule: AnyRule, path: Path) -> RuleHead:
        from sigma.correlations import SigmaCorrelationRule

        if rule.name:
            key = str(rule.name)
        elif rule.id is not None:
            key = str(rule.id)
        else:
            key = f"{path.name}:{rule.title}"
        return cls(key=key, uuid=str(rule.id) if rule.id is not None else None, title=str(rule.title),
                   level=str(rule.level.name.lower()) if rule.level is not None else "medium",
                   tags=tuple(f"{t.namespace}.{t.name}" for t in rule.tags),
                   is_correlation=isinstance(rule, SigmaCorrelationRule))


class LoadedRule:
    """A rule and where it came from; from the cache, its pySigma object is parsed on first use."""

    __slots__ = ("_rule", "head", "meta", "path", "shipped")

    def __init__(self, rule: AnyRule | None, path: Path, meta: RuleMeta, shipped: bool = False,
                 head: RuleHead | None = None) -> None:
        if rule is None and head is None:
            raise ValueError("a loaded rule needs its rule or its head")
        self._rule = rule
        self.path = path
        self.meta = meta
        self.shipped = shipped
        self.head = head if head is not None else RuleHead.of(rule, path)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"LoadedRule({self.head.key!r}, {str(self.path)!r})"

    @property
    def rule(self) -> AnyRule:
        if self._rule is None:
            rules, problems = load_file(self.path)
            for rule in rules:
                if RuleHead.of(rule, self.path).key == self.head.key:
                    self._rule = rule
                    break
            else:
                why = "; ".join(p.reason for p in problems) or "not in the file any more"
                raise ValueError(f"{self.path}: rule {self.head.key} cannot be read again: {why}")
        return self._rule

    def forget(self) -> None:
        """Drop the parsed rule: it is read again from its file when next asked for, as a rule
        from the compiled-rule cache is (``compile_ruleset(consume=True)`` has processed it in place)."""
        self._rule = None

    @property
    def key(self) -> str:
        """Stable identifier: the Sigma ``name`` when given, else the rule's UUID."""
        return self.head.key

    @property
    def uuid(self) -> str | None:
        return self.head.uuid

    @property
    def title(self) -> str:
        return self.head.title

    @property
    def level(self) -> str:
        return self.head.level

    @property
    def tags(self) -> list[str]:
        return list(self.head.tags)

    @property
    def is_correlation(self) -> bool:
        return self.head.is_correlation


@dataclass(slots=True)
class RuleSet:
    rules: list[LoadedRule]
    problems: list[RuleProblem]

    def by_key(self) -> dict[str, LoadedRule]:
        return {r.key: r for r in self.rules}

    def find(self, ref: str) -> LoadedRule:
        """A rule by name, UUID, title or file name (the ways an analyst names one)."""
        for r in self.rules:
            if ref in (r.key, r.uuid, r.title):
                return r
        in_file = [r for r in self.rules if ref in (r.path.name, r.path.stem, str(r.path))]
        if in_file:  # a file's main rule is the one nothing else in it references: the last one
            return in_file[-1]
        raise ValueError(f"no rule named {ref!r} (try `soc rules list`)")


def rule_files(dirs: Iterable[Path]) -> list[tuple[Path, bool]]:
    """Every ``*.yml`` / ``*.yaml`` under the folders, sorted, with whether it is shipped."""
    out: list[tuple[Path, bool]] = []
    for d in dirs:
        d = Path(d)
        shipped = d.resolve() == SHIPPED_RULES
        if d.is_file():
            out.append((d, shipped))
            continue
        if not d.is_dir():
            raise ValueError(f"rules folder not found: {d}")
        # by their parts: the order ``Path`` comparison gives, without its per-comparison Python call
        out.extend((p, shipped) for p in sorted(_yaml_files(d), key=_parts))
    return out


def _parts(path: Path) -> tuple[str, ...]:
    return path.parts


def _yaml_files(folder: Path) -> Iterator[Path]:
    """``*.yml`` / ``*.yaml`` files under ``folder``, as ``rglob("*")`` finds them (symlinked folders
    not entered, symlinked files followed), from the directory entries' types: no ``stat`` per file
    and no ``Path`` per entry that is not a rule (every warm run lists SigmaHQ's 2,400 files)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _yaml_files(Path(entry.path))
            elif os.path.splitext(entry.name)[1] in (".yml", ".yaml") and entry.is_file():  # Path.suffix
                yield Path(entry.path)


def rule_dirs(extra: Sequence[Path | str] | None = None, *, shipped: bool = True) -> list[Path]:
    dirs = [SHIPPED_RULES] if shipped else []
    dirs += [Path(p) for p in extra or ()]
    return dirs


def load_file(path: Path, *, documents: Callable[[str], list[Any]] | None = None
              ) -> tuple[list[AnyRule], list[RuleProblem]]:
    """Parse one file (it may hold several YAML documents); never raises for bad content.

    ``documents`` parses the text (default :func:`yaml_documents`); the parity check
    (``tests/sigmaparity.py``) passes pySigma's own ``yaml.safe_load_all`` to prove both agree.
    """
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaRuleLocation
    from sigma.rule import SigmaRule

    from eventstore.yamlfile import DuplicateKeyError

    problems: list[RuleProblem] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [RuleProblem(str(path), None, "load", f"cannot read: {exc}")]
    try:
        docs = (documents or yaml_documents)(text)
        refused = [d for d in docs if isinstance(d, DuplicateKeyError)]
        if refused:  # that document is not used, the file's others are (unless they depend on it)
            problems += [RuleProblem(str(path), None, "load", _reason(e)) for e in refused]
            docs = [d for d in docs if not isinstance(d, DuplicateKeyError)]
            if _COLLECTION.search(text):  # the refused one may be the `action: global` the others build on
                raise ValueError("the file is a Sigma collection (action: global, repeat, reset) whose documents "
                                 "depend on each other: none is used when one is refused")
        coll = SigmaCollection.from_dicts(docs, collect_errors=True,
                                          source=SigmaRuleLocation(path), resolve_references=False)
    except Exception as exc:  # yaml errors and anything pySigma raises for a broken file
        return [], [*problems, RuleProblem(str(path), None, "load", _reason(exc))]
    rules: list[AnyRule] = []
    per_rule = {_reason(e) for rule in coll.rules for e in (getattr(rule, "errors", None) or [])}
    for err in coll.errors:
        if _reason(err) not in per_rule:  # pySigma lists a rule's errors on the collection too
            problems.append(RuleProblem(str(path), None, "load", _reason(err)))
    for rule in coll.rules:
        if not isinstance(rule, SigmaRule | SigmaCorrelationRule):
            continue  # Sigma filters are applied by pySigma only in conversion; not supported here
        if rule.errors:
            problems.append(RuleProblem(str(path), _label(rule), "load", "; ".join(_reason(e) for e in rule.errors)))
            continue
        rules.append(rule)
    return rules, problems


def yaml_documents(text: str) -> list[Any]:
    """The file's YAML documents, parsed by libyaml when PyYAML has it; a document with a
    duplicate key is its ``DuplicateKeyError`` (in its place) instead.

    ``SigmaCollection.from_yaml`` uses PyYAML's pure-Python safe loader (``yaml.safe_load_all``:
    no custom constructor, a duplicate key keeps the last value, dates become ``date``), which
    was ~80 % of loading SigmaHQ's Windows folder (5.9 s of CPU; libyaml: ~0.5 s). libyaml only
    replaces the parser: the constructor and the resolver are the same Python classes, so the
    documents are the same (``tests/test_sigma_yaml_parity.py``, and all of SigmaHQ with
    ``python -m tests.sigmaparity``), except that a document naming a key twice is refused
    (``eventstore.yamlfile``: a second ``condition:`` could hide a clause from a reviewer).
    On a document libyaml refuses, the pure-Python loader decides, so errors read as pySigma
    users know them (with their line).
    """
    import yaml

    from eventstore.yamlfile import documents

    try:
        return documents(text)
    except yaml.YAMLError:
        return documents(text, pure=True)


def rule_documents(dirs: Sequence[Path | str] | None = None, *, shipped: bool = True,
                   base_only: bool = False) -> list[dict[str, Any]]:
    """The rule files' YAML documents, as written (for ``soc rules export`` and sigma-cli).

    ``base_only`` drops correlation rules: what a backend without correlations (sigma-cli's
    Lucene target) can convert. A document that is not a mapping (or names a key twice) is
    skipped; ``soc rules validate`` names it.
    """
    import yaml

    docs: list[dict[str, Any]] = []
    for path, _ in rule_files(rule_dirs(dirs, shipped=shipped)):
        try:
            found = yaml_documents(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        docs += [d for d in found if isinstance(d, dict) and not (base_only and "correlation" in d)]
    return docs


def load_rules(dirs: Sequence[Path | str] | None = None, *, shipped: bool = True) -> RuleSet:
    """Load the shipped rules (unless ``shipped=False``) and every rule under ``dirs``."""
    return load_rule_files(rule_files(rule_dirs(dirs, shipped=shipped)))


def load_rule_files(files: Sequence[tuple[Path, bool]]) -> RuleSet:
    """The rules of these files (path, shipped), in this order, correlation references resolved among them."""
    loaded: list[LoadedRule] = []
    problems: list[RuleProblem] = []
    for path, is_shipped in files:
        rules, probs = load_file(path)
        problems += probs
        for rule in rules:
            try:
                meta = RuleMeta.from_rule(rule)
            except (ValueError, TypeError) as exc:
                problems.append(RuleProblem(str(path), _label(rule), "load", f"ztsoc block: {exc}"))
                continue
            loaded.append(LoadedRule(rule, path, meta, is_shipped))
    loaded, resolve_problems = _resolve(loaded)
    return RuleSet(loaded, problems + resolve_problems)


def closure(ruleset: RuleSet, roots: Sequence[LoadedRule]) -> RuleSet:
    """The roots and every rule they reference (transitively), read again from their files.

    What evaluating a few rules needs, with correlation references resolved among them. It
    reads only the files involved, so it works the same on rules parsed just now and on rules
    from the compiled-rule cache (whose pySigma objects are parsed on demand, unresolved).
    """
    by_ref: dict[str, LoadedRule] = {}
    for r in ruleset.rules:
        by_ref.setdefault(r.key, r)
        if r.uuid:
            by_ref.setdefault(r.uuid, r)
    wanted: set[str] = set()
    paths: dict[Path, bool] = {}
    stack = list(roots)
    while stack:
        r = stack.pop()
        if r.key in wanted:
            continue
        wanted.add(r.key)
        paths.setdefault(r.path, r.shipped)
        if r.is_correlation:
            for ref in getattr(r.rule, "rules", None) or []:
                target = by_ref.get(str(ref.reference))
                if target is not None:
                    stack.append(target)
    fresh: list[LoadedRule] = []
    problems: list[RuleProblem] = []
    for path, shipped in paths.items():
        rules, probs = load_file(path)
        problems += probs
        for rule in rules:
            try:
                fresh.append(LoadedRule(rule, path, RuleMeta.from_rule(rule), shipped))
            except (ValueError, TypeError) as exc:
                problems.append(RuleProblem(str(path), _label(rule), "load", f"ztsoc block: {exc}"))
    resolved, resolve_problems = _resolve(fresh)
    return RuleSet([r for r in resolved if r.key in wanted], problems + resolve_problems)


def _resolve(rules: list[LoadedRule]) -> tuple[list[LoadedRule], list[RuleProblem]]:
    """Resolve correlation references over all folders; drop correlations that cannot resolve."""
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError

    coll = SigmaCollection([r.rule for r in rules], resolve_references=False)
    problems: list[RuleProblem] = []
    keep: list[LoadedRule] = []
    for r in rules:
        if isinstance(r.rule, SigmaCorrelationRule):
            try:
                r.rule.resolve_rule_references(coll)
            except SigmaError as exc:
                problems.append(RuleProblem(str(r.path), _label(r.rule), "resolve", _reason(exc)))
                continue
        keep.append(r)
    # a correlation referencing a dropped correlation is dropped too
    dropped = {id(r.rule) for r in rules} - {id(r.rule) for r in keep}
    changed = True
    while changed and dropped:
        changed = False
        for r in list(keep):
            if isinstance(r.rule, SigmaCorrelationRule) and any(id(ref.rule) in dropped for ref in r.rule.rules or []):
                keep.remove(r)
                dropped.add(id(r.rule))
                problems.append(RuleProblem(str(r.path), _label(r.rule), "resolve", "references an unusable rule"))
                changed = True
    return keep, problems


def _label(rule: AnyRule) -> str:
    return str(rule.name or rule.id or rule.title)


def _reason(exc: BaseException) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:  # a YAML error: say where, as line:column (its text is PyYAML's)
        what = ", ".join(str(t) for t in (getattr(exc, "context", None), getattr(exc, "problem", None)) if t)
        return f"{type(exc).__name__}: {mark.line + 1}:{mark.column + 1}: {what}"[:300]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
