"""The responder's one-shot mode: rules over events in memory, one row per match, no store needed.

``soc scan`` reads collected files and hands their events here batch by batch. Each event
meets only the rules its index entries allow (:class:`~detections.sigma.matcher.Matcher`);
every (rule, event) match of a rule that raises alerts becomes a :class:`ScanMatch`, the row a
responder reads in a timeline (Zircolite's, Chainsaw's and Hayabusa's output). Memory holds
the matched events only, not the whole input: correlations are evaluated over those at the end
(a correlation counts matches of its referenced rules, nothing else), in time order, to add
their alerts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from detections.alerts import AlertBook
from detections.sigma.engine import CompiledSet, Evaluation, epoch
from detections.sigma.matcher import INDEX_FIELDS, CompiledRule, EventView, detection_fields
from eventstore.store import Doc, Store

#: fields shown for every row whatever the rule looks at
_WHERE = ("host.name", "log.file.path")
#: level order, most severe first (for summaries and ``--min-level``)
LEVELS = ("critical", "high", "medium", "low", "informational")


@dataclass(frozen=True, slots=True)
class ScanMatch:
    """One (rule, event) match: a row of the timeline."""

    timestamp: str
    rule_id: str
    rule_name: str
    level: str
    event_id: str
    host: str | None
    source: str | None
    #: the values of the fields the rule's detection looks at, as the event has them
    fields: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"@timestamp": self.timestamp, "rule.id": self.rule_id, "rule.name": self.rule_name,
                "ztsoc.alert.level": self.level, "event.id": self.event_id, "host.name": self.host,
                "log.file.path": self.source, "fields": self.fields}


@dataclass
class ScanPart:
    """A scanner's findings, picklable: what a worker process sends back."""

    matches: list[ScanMatch]
    kept: list[tuple[float, int, Doc, tuple[str, ...]]]
    events: int


@dataclass
class ScanResult:
    matches: list[ScanMatch] = field(default_factory=list)
    #: alerts of correlation rules (their single-event matches are rows already)
    correlations: list[Doc] = field(default_factory=list)
    events: int = 0

    def by_level(self) -> dict[str, int]:
        counts = Counter(m.level for m in self.matches)
        counts.update(str(a.get("ztsoc.alert.level", "medium")) for a in self.correlations)
        return {lvl: counts[lvl] for lvl in LEVELS if counts[lvl]}

    def by_rule(self) -> list[tuple[str, str, str, int]]:
        """(rule id, title, level, matches), most matches first."""
        counts: Counter[tuple[str, str, str]] = Counter((m.rule_id, m.rule_name, m.level) for m in self.matches)
        counts.update((str(a.get("rule.id")), str(a.get("rule.name")), str(a.get("ztsoc.alert.level", "medium")))
                      for a in self.correlations)
        return [(k[0], k[1], k[2], n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


class Scanner:
    """Feed events (any order); ``finish`` adds the correlations' alerts."""

    def __init__(self, cs: CompiledSet, *, min_level: str | None = None, keep_matched: bool = False) -> None:
        self.cs = cs
        self.result = ScanResult()
        #: matched events kept for correlations (and ``alerts``): (time, order, event, keys of its rules)
        self._kept: list[tuple[float, int, Doc, tuple[str, ...]]] = []
        self._fields: dict[str, tuple[str, ...]] = {}
        self._levels = frozenset(LEVELS[: LEVELS.index(min_level) + 1]) if min_level else frozenset(LEVELS)
        self._consumed = {ref for spec in cs.specs for ref in spec.refs}
        #: keep every matched event (for ``alerts``), not only those correlations consume
        self._keep_all = keep_matched

    def _key_fields(self, cr: CompiledRule) -> tuple[str, ...]:
        names = self._fields.get(cr.key)
        if names is None:
            names = tuple(f for f in detection_fields(cr) if f not in INDEX_FIELDS and f not in _WHERE)
            self._fields[cr.key] = names
        return names

    def feed(self, events: Iterable[Doc], flat: bool = False) -> None:
        """Match the events; ``flat``: their reader makes flat events only (``ReaderBase.flat_events``)."""
        match = self.cs.matcher.match
        generating, infos = self.cs.generating, self.cs.infos
        out = self.result.matches
        for doc in events:
            self.result.events += 1
            hits = match(doc, flat)
            if not hits:
                continue
            view: EventView | None = None
            for cr in hits:
                if cr.key not in generating:
                    continue
                info = infos[cr.key]
                if info.level not in self._levels:
                    continue
                view = view or EventView(doc, flat)  # the matcher's own field lookup (aliases included)
                shown = {}
                for name in self._key_fields(cr):
                    value = view.raw(name)
                    if value not in (None, "", []):
                        shown[name] = value
                out.append(ScanMatch(str(doc.get("@timestamp", "")), cr.key, info.title, info.level,
                                     str(doc.get("event.id", "")), _str(doc.get("host.name")),
                                     _str(doc.get("log.file.path")), shown))
            if self._keep_all or (self._consumed and any(cr.key in self._consumed for cr in hits)):
                self._kept.append((epoch(doc), len(self._kept), doc, tuple(cr.key for cr in hits)))

    def part(self) -> ScanPart:
        """What this scanner found, to be merged into another (a worker's share of the files)."""
        return ScanPart(self.result.matches, self._kept, self.result.events)

    def merge(self, part: ScanPart) -> None:
        self.result.matches.extend(part.matches)
        base = len(self._kept)
        self._kept.extend((ts, base + n, doc, keys) for ts, n, doc, keys in part.kept)
        self.result.events += part.events

    def alerts(self, book: AlertBook) -> list[Doc]:
        """The alerts the matched events raise, recorded in ``book`` (in time order, as a detection run)."""
        evaluation = Evaluation(self.cs, book)
        by_key = {cr.key: cr for cr in self.cs.base}
        for _, _, doc, keys in sorted(self._kept, key=lambda k: (k[0], k[1])):
            evaluation.event(doc, [by_key[k] for k in keys])
        return book.docs()

    def stored_alerts(self, store: Store) -> tuple[AlertBook, list[Doc], dict[tuple[str, str], str]]:
        """The alerts to put in ``store`` (``--store``), as ``soc detect run`` puts them: recorded in the
        store's alert book, then through the analysts' exceptions (``detections.exceptions.apply_exceptions``,
        the step the detection runner takes), so an alert an exception covers is stored marked suppressed,
        never raised into the queue, and never dropped. Also returns the book (to save once the alerts are
        stored) and, per (rule id, event id) of a match whose alert is suppressed, the exception's id: the
        timeline marks those matches rather than omitting them, as ``soc alerts show`` marks a suppressed
        alert (an exception that is too broad stays visible to the responder)."""
        from detections.exceptions import EXCEPTION_ID, SUPPRESSED, apply_exceptions

        book = AlertBook(store)
        docs = apply_exceptions(store, self.alerts(book))
        suppressed = {str(d.get("event.id")): str(d.get(EXCEPTION_ID)) for d in docs if d.get(SUPPRESSED)}
        excepted: dict[tuple[str, str], str] = {}
        for case in book.touched():
            if (exception_id := suppressed.get(case.id)) is not None:
                excepted.update(((case.rule.key, event_id), exception_id) for event_id in case.evidence)
        for d in docs:  # a correlation's row is its alert
            if d.get(SUPPRESSED):
                excepted[(str(d.get("rule.id")), str(d.get("event.id")))] = suppressed[str(d.get("event.id"))]
        return book, docs, excepted

    def finish(self) -> ScanResult:
        """Sort the rows by time; evaluate the correlations over the matched events."""
        self.result.matches.sort(key=lambda m: (m.timestamp, m.rule_id, m.event_id))
        if self._kept and self.cs.specs:
            book = AlertBook(None)
            self.alerts(book)
            spec_keys = {s.key for s in self.cs.specs}
            self.result.correlations = [a for a in book.docs() if a.get("rule.id") in spec_keys
                                        and a.get("ztsoc.alert.level", "medium") in self._levels]
        return self.result


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def scan_events(cs: CompiledSet, batches: Iterable[Sequence[Doc]]) -> ScanResult:
    """Every batch through one scanner (for callers without files)."""
    scanner = Scanner(cs)
    for batch in batches:
        scanner.feed(batch)
    return scanner.finish()
