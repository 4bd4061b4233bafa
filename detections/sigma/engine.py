"""Rules + events -> alerts in one pass: the part both stores share.

``compile_ruleset`` turns a loaded :class:`~detections.sigma.loader.RuleSet` into an index
of compiled base rules (:class:`~detections.sigma.matcher.Matcher`), the correlation specs,
and which rules raise alerts (Sigma v2: a rule referenced by a correlation raises none of
its own unless the correlation says ``generate: true``). :class:`Evaluation` takes events
in time order, each with the base rules it matched (found by the embedded matcher, or by
Elasticsearch in ``es_eval``), and records findings in an :class:`~detections.alerts.AlertBook`.

Novelty rules (``ztsoc.baseline``: "a service calling another it has never called") keep the
combinations seen so far in the store's state (``baseline`` / rule key): Sigma has no
"never seen" operator, so the rule selects the events and the baseline decides.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from detections.alerts import CONTEXT_FIELDS, ENTITY_FIELDS, AlertBook, RuleInfo
from detections.sigma.loader import LoadedRule, RuleProblem, RuleSet
from detections.sigma.matcher import CompiledRule, Matcher, UnsupportedRule, compile_rule
from eventstore.store import Doc, Store

if TYPE_CHECKING:
    from detections.sigma.correlation import CorrelationEngine, CorrelationSpec

# pySigma's rule model, its pipelines and our correlation engine are imported where a rule set is
# compiled or correlated: a scan from the compiled-rule cache with no correlation rules needs none
# of them (~0.07 s of imports)

BASELINE_KIND = "baseline"


@dataclass
class CompiledSet:
    rules: dict[str, LoadedRule]
    base: list[CompiledRule]
    matcher: Matcher
    specs: list[CorrelationSpec]
    generating: frozenset[str]
    #: correlation key -> how far before a window's end its inputs may lie (spans up the chain)
    margin: dict[str, float]
    infos: Mapping[str, RuleInfo]
    problems: list[RuleProblem] = field(default_factory=list)

    @property
    def max_margin(self) -> float:
        return max(self.margin.values(), default=0.0)

    def new_correlations(self) -> CorrelationEngine:
        from detections.sigma.correlation import CorrelationEngine

        return CorrelationEngine(self.specs)


def rule_info(r: LoadedRule) -> RuleInfo:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

    rule = r.rule
    suppress = r.meta.suppress
    if suppress is None:
        span = float(rule.timespan.seconds) if isinstance(rule, SigmaCorrelationRule) else 0.0
        suppress = max(3600.0, span)
    category = None
    if isinstance(rule, SigmaRule):
        ls = rule.logsource
        category = "/".join(p for p in (ls.product, ls.service, ls.category) if p) or None
    return RuleInfo(
        key=r.key, title=r.title, level=r.level, tags=tuple(r.tags), uuid=r.uuid,
        description=(str(rule.description).strip() if rule.description else None),
        author=(str(rule.author) if rule.author else None),
        references=tuple(str(x) for x in (rule.references or ())),
        ruleset="ztsoc" if r.shipped else "sigma",
        guide=r.meta.guide, response=r.meta.response, suppress=suppress,
        entity_fields=r.meta.entity, category=category,
    )


def compile_ruleset(ruleset: RuleSet, pipeline: str = "ztsoc", *, consume: bool = False) -> CompiledSet:
    """Compile every usable rule; the rest become problems (stage ``compile``) with the reason.

    ``consume``: the rule set was just read from its files for this compile (as the compiled-rule
    cache and ``load_compiled`` read it), so each base rule is processed in place rather than on
    a deep copy (the copy was 40 % of compiling SigmaHQ's Windows folder); its ``LoadedRule`` then
    forgets it and reads it again from its file if anything asks for it later, exactly as a rule
    from the cache does. Rules a correlation references keep the copy: the correlation holds them.
    """
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule

    from detections.sigma.correlation import CorrelationSpec, UnsupportedCorrelation
    from detections.sigma.pipelines import get_pipeline

    pl = get_pipeline(pipeline)
    problems = list(ruleset.problems)
    by_obj: dict[int, str] = {id(r.rule): r.key for r in ruleset.rules}
    held = ({id(ref.rule) for r in ruleset.rules if isinstance(r.rule, SigmaCorrelationRule)
             for ref in r.rule.rules or []} if consume else set())
    rules: dict[str, LoadedRule] = {}
    base: list[CompiledRule] = []
    specs: list[CorrelationSpec] = []
    infos: dict[str, RuleInfo] = {}
    for r in ruleset.rules:
        if r.key in rules:
            problems.append(RuleProblem(str(r.path), r.key, "load", f"duplicate rule id/name (also in {rules[r.key].path})"))
            continue
        try:
            info = rule_info(r)  # before the pipeline: it may change the log source
            if isinstance(r.rule, SigmaRule):
                in_place = consume and id(r.rule) not in held
                base.append(compile_rule(r.rule, pl, key=r.key, payload=r, pipeline_name=pipeline, in_place=in_place))
                if in_place:
                    r.forget()
            else:
                targets = [by_obj[id(ref.rule)] for ref in r.rule.rules or []]
                processed = copy.deepcopy(r.rule)
                pl.apply(processed)
                specs.append(CorrelationSpec.from_rule(processed, r.key, targets))
        except (UnsupportedRule, UnsupportedCorrelation, SigmaError, KeyError) as exc:
            problems.append(RuleProblem(str(r.path), r.key, "compile", _reason(exc)))
            continue
        except Exception as exc:  # a pySigma transformation failing on an odd rule must not stop the rest
            problems.append(RuleProblem(str(r.path), r.key, "compile", _reason(exc)))
            continue
        rules[r.key] = r
        infos[r.key] = info
    specs = _drop_dangling(specs, rules, problems)
    referenced: dict[str, list[CorrelationSpec]] = {}
    for spec in specs:
        for ref in spec.refs:
            referenced.setdefault(ref, []).append(spec)
    generating = frozenset(
        key for key in rules if key not in referenced or any(s.generate for s in referenced[key])
    )
    spec_by_key = {s.key: s for s in specs}

    def margin(key: str, depth: int = 0) -> float:
        spec = spec_by_key.get(key)
        if spec is None or depth > 20:
            return 0.0
        return spec.span + max((margin(ref, depth + 1) for ref in spec.refs), default=0.0)

    return CompiledSet(
        rules=rules, base=base, matcher=Matcher(base), specs=specs, generating=generating,
        margin={s.key: margin(s.key) for s in specs}, infos={k: infos[k] for k in rules},
        problems=problems,
    )


#: how a correlation dropped for a reference to an unusable rule is reported (the split compile
#: recognises the problem by it)
DANGLING = "references unusable rule(s): "


def _drop_dangling(specs: list[CorrelationSpec], rules: Mapping[str, LoadedRule],
                   problems: list[RuleProblem]) -> list[CorrelationSpec]:
    keep = list(specs)
    changed = True
    while changed:
        changed = False
        for spec in list(keep):
            missing = [ref for ref in spec.refs if ref not in rules]
            if missing:
                keep.remove(spec)
                r = rules.get(spec.key)
                problems.append(RuleProblem(str(r.path) if r else "?", spec.key, "compile",
                                            DANGLING + ", ".join(missing)))
                if isinstance(rules, dict):
                    rules.pop(spec.key, None)
                changed = True
    return keep


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]


def epoch(doc: Mapping[str, Any]) -> float:
    ts = doc.get("@timestamp")
    if isinstance(ts, int | float):
        return float(ts) / (1000.0 if ts > 1e11 else 1.0)
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()


class BaselineBook:
    """Combinations of field values seen per novelty rule (state ``baseline`` / rule key)."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self._data: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()

    def _get(self, key: str) -> dict[str, Any]:
        if key not in self._data:
            doc = (self.store.get_state(BASELINE_KIND, key) if self.store is not None else None) or {}
            self._data[key] = {"started": doc.get("started"), "seen": set(doc.get("seen") or [])}
        return self._data[key]

    def novel(self, key: str, combo: str, ts: float, learn: float) -> bool:
        """Record ``combo``; True when it is new and the learning period is over."""
        data = self._get(key)
        if data["started"] is None:
            data["started"] = ts
            self._dirty.add(key)
        if combo in data["seen"]:
            return False
        data["seen"].add(combo)
        self._dirty.add(key)
        return ts >= float(data["started"]) + learn

    def save(self) -> None:
        if self.store is None:
            return
        for key in sorted(self._dirty):
            data = self._data[key]
            self.store.put_state(BASELINE_KIND, key, {"started": data["started"], "seen": sorted(data["seen"])})
        self._dirty.clear()


@dataclass
class Stats:
    events: int = 0
    matches: Counter[str] = field(default_factory=Counter)
    firings: Counter[str] = field(default_factory=Counter)


#: (rule key, the matching event): a caller's view of every base-rule match
MatchHook = Callable[[str, Mapping[str, Any]], None]


class Evaluation:
    """One pass over events in time order; findings go to the book."""

    def __init__(self, cs: CompiledSet, book: AlertBook, baselines: BaselineBook | None = None,
                 report_from: Mapping[str, float] | None = None, on_match: MatchHook | None = None) -> None:
        self.cs = cs
        #: sees every (base rule, event) match, whether or not it makes an alert (``--matches FILE``)
        self.on_match = on_match
        self.book = book
        self.baselines = baselines or BaselineBook(None)
        self.correlations = cs.new_correlations()
        self.report_from = report_from or {}
        self.stats = Stats()
        #: rule key -> why it failed this run (its predicate raised, its query was refused or timed out)
        self.failed: dict[str, str] = {}
        self._seen: set[str] = set()

    def _reportable(self, key: str, ts: float) -> bool:
        return ts >= self.report_from.get(key, -math.inf)

    def event(self, doc: Mapping[str, Any], matched: Sequence[CompiledRule] | None = None) -> None:
        """One event and the base rules it matched (``None``: ask the embedded matcher)."""
        eid = str(doc.get("event.id"))
        if eid in self._seen:
            return  # the same event twice (overlapping reads): counted once
        self._seen.add(eid)
        self.stats.events += 1
        hits = self.cs.matcher.match_isolated(doc, self.failed) if matched is None else matched
        if not hits:
            return
        ts = epoch(doc)
        consumed = self.correlations.consumed
        for cr in hits:
            key = cr.key
            self.stats.matches[key] += 1
            if self.on_match is not None:
                self.on_match(key, doc)
            if key in self.cs.generating and self._reportable(key, ts):
                self._single(key, doc, ts, eid)
            if key in consumed:
                for f in self.correlations.feed(key, ts, doc, (eid,)):
                    self.stats.firings[f.rule_key] += 1
                    if f.rule_key in self.cs.generating and self._reportable(f.rule_key, f.ts):
                        self.book.record(self.cs.infos[f.rule_key], f.group_doc(), f.window_start, f.ts,
                                         f.evidence, value=f.value)

    def _single(self, key: str, doc: Mapping[str, Any], ts: float, eid: str) -> None:
        info = self.cs.infos[key]
        meta = self.cs.rules[key].meta
        if meta.baseline_fields:
            values = [doc.get(f) for f in meta.baseline_fields]
            if any(v in (None, "", []) for v in values):
                return
            combo = "\x1f".join(str(v) for v in values)
            if not self.baselines.novel(key, combo, ts, meta.baseline_learn):
                return
            group = {f: str(v) for f, v in zip(meta.baseline_fields, values, strict=True)}
        else:
            group = _entity_group(info, doc)
        context = {f: doc[f] for f in CONTEXT_FIELDS if doc.get(f) not in (None, "")}
        self.book.record(info, group, ts, ts, (eid,), context)

    def run(self, docs: Iterable[Mapping[str, Any]]) -> Evaluation:
        for doc in docs:
            self.event(doc)
        return self


def _entity_group(info: RuleInfo, doc: Mapping[str, Any]) -> dict[str, str]:
    """A single-event rule groups its alerts by the entity (one alert per entity per window)."""
    for name in (*info.entity_fields, *ENTITY_FIELDS):
        value = doc.get(name)
        if value not in (None, "", [], "-"):
            return {name: str(value[0] if isinstance(value, list) else value)}
    return {}


def evaluate(cs: CompiledSet, events: Iterable[Doc], *, book: AlertBook | None = None,
             baselines: BaselineBook | None = None) -> tuple[list[Doc], Stats]:
    """Evaluate in memory (no store): the alerts the events raise. Events need not be sorted."""
    book = book or AlertBook(None)
    ordered = sorted(events, key=lambda d: (epoch(d), str(d.get("event.id"))))
    ev = Evaluation(cs, book, baselines).run(ordered)
    return book.docs(), ev.stats
