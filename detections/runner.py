"""The detection runner: every rule over the events since its cursor, without missing or repeating.

Per rule, a cursor in the store (state ``cursor`` / rule key: ``{"until": ISO}``) says up to
where its events have been evaluated. A run reads from the oldest cursor minus the look-back
(late events: written after the run that should have seen them, with an older
``@timestamp``) and minus the longest correlation timespan (a window straddling the
previous run must see its older half), up to ``until`` (default: now), in one time-ordered
stream. Findings before a rule's own ``cursor - look-back`` only rebuild correlation state.

Nothing is lost or repeated across stops and restarts because (1) an alert's id is derived
from its rule, group and first event, and open cases are kept in the store
(:class:`detections.alerts.AlertBook`), so re-evaluating an overlap updates the same alert;
(2) alerts are written before the cursors move, so a crash in between only causes a replay.
A cursor never passes the newest event actually evaluated or the moment the run started
(whichever is later), even when ``until`` lies in the future (``soc demo`` evaluates up to
the end of its generated day plus an hour): events stamped between now and that ``until``
and written later would otherwise sit behind the cursor and never be evaluated.
A runner that was down for a day simply reads a longer range next time (catch-up).

Elasticsearch stores are evaluated by ``es_eval`` (queries run in the cluster); every other
backend streams its events through the embedded matcher. ``EVALUATORS`` is the registry.

A run never dies of one rule: a rule whose query the store refuses or that runs past its
time budget (Elasticsearch), or whose predicate raises on an event (either store), is
reported in ``RunReport.failed`` with its reason; its findings of this run are dropped and
its cursor (and those of the correlations built on it) stays where it was, so the next run
tries it again over the same events, while every other rule raises its alerts and moves on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from detections.alerts import AlertBook
from detections.sigma.engine import BaselineBook, CompiledSet, Evaluation, MatchHook, compile_ruleset, epoch
from detections.sigma.loader import load_rules
from detections.sigma.matcher import CompiledRule
from eventstore.gc_pause import gc_paused
from eventstore.store import Doc, Store
from eventstore.timeutil import from_iso, to_iso, utcnow

CURSOR_KIND = "cursor"
DEFAULT_LOOKBACK = timedelta(minutes=5)
DEFAULT_SINCE = timedelta(hours=1)

Stream = Iterator[tuple[Doc, list[CompiledRule] | None]]
#: (store, rules, since, until, failed): ``failed`` (rule key -> reason) is filled by the evaluator
Evaluator = Callable[[Store, CompiledSet, datetime | None, datetime | None, dict[str, str]], Stream]


def _embedded(store: Store, cs: CompiledSet, since: datetime | None, until: datetime | None,
              failed: dict[str, str]) -> Stream:
    for doc in store.scan("*", since=since, until=until):
        yield doc, None  # the embedded matcher decides (a rule that raises lands in ``failed``)


def _elasticsearch(store: Store, cs: CompiledSet, since: datetime | None, until: datetime | None,
                   failed: dict[str, str]) -> Stream:
    from detections.sigma.es_eval import stream_matches

    for doc, rules in stream_matches(store, cs, since, until, failed=failed):
        yield doc, list(rules)


#: store backend -> how its events reach the evaluation (default: the embedded matcher).
EVALUATORS: dict[str, Evaluator] = {
    "elasticsearch": _elasticsearch,
    "sqlite": _embedded,
}


@dataclass
class RunReport:
    backend: str
    since: str
    until: str
    rules: int
    problems: int
    events: int = 0
    matches: int = 0
    alerts_new: int = 0
    alerts_updated: int = 0
    alert_ids: list[str] = field(default_factory=list)
    per_rule: dict[str, int] = field(default_factory=dict)
    write_errors: list[tuple[str, str]] = field(default_factory=list)
    #: rule key -> why it failed this run (retried next run: its cursor did not move)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def alerts(self) -> int:
        return self.alerts_new + self.alerts_updated

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["alerts"] = self.alerts
        return d


def load_compiled(rules_dirs: Sequence[Path | str] = (), *, shipped: bool = True, pipeline: str = "ztsoc",
                  use_cache: bool = True, jobs: int = 1) -> CompiledSet:
    """The rules compiled, from the compiled-rule cache when it holds this exact set (see ``sigma.cache``;
    ``jobs``: processes a cold compile of a large set may fork, for a caller without threads)."""
    if not use_cache:
        return compile_ruleset(load_rules(rules_dirs, shipped=shipped), pipeline, consume=True)
    from detections.sigma.cache import load_compiled_cached

    return load_compiled_cached(tuple(rules_dirs), shipped=shipped, pipeline=pipeline, jobs=jobs)[1]


def run_detections(store: Store, since: datetime | None = None, until: datetime | None = None,
                   rules_dirs: Sequence[Path | str] = (), *, lookback: timedelta = DEFAULT_LOOKBACK,
                   compiled: CompiledSet | None = None, reset: bool = False, shipped: bool = True,
                   evaluator: str | None = None, rewind: bool = False,
                   on_match: MatchHook | None = None) -> RunReport:
    """One run. ``since`` applies to rules without a cursor (or all, with ``reset``).

    ``rewind``: ``since`` was asked for, so every rule also re-evaluates from there (from its
    cursor when that is earlier: nothing unread is skipped). Alert ids come from the rule,
    the group and the window, so a window evaluated twice updates its alerts, never doubles
    them. ``on_match(rule key, event)`` sees every base-rule match (``--matches FILE``).
    """
    started = time.perf_counter()
    cs = compiled or load_compiled(rules_dirs, shipped=shipped)
    now = utcnow()
    until = until or now
    default_from = since or (until - DEFAULT_SINCE)
    keys = sorted(cs.generating)
    report_from: dict[str, float] = {}
    cursors = {} if reset else store.get_states(CURSOR_KIND, keys)
    for key in keys:
        cursor = cursors.get(key)
        start = from_iso(str(cursor["until"])) - lookback if cursor and cursor.get("until") else default_from
        if rewind and since is not None:
            start = min(start, since)
        report_from[key] = start.timestamp()
    if not keys:
        return RunReport(store.backend, to_iso(default_from), to_iso(until), 0, len(cs.problems))
    stream_from = min(report_from[k] - cs.margin.get(k, 0.0) for k in keys)
    stream_since = datetime.fromtimestamp(stream_from, until.tzinfo) if math.isfinite(stream_from) else None

    book = AlertBook(store)
    book.preload(keys)
    baselines = BaselineBook(store)
    evaluation = Evaluation(cs, book, baselines, report_from, on_match=on_match)
    source = EVALUATORS.get(evaluator or store.backend, _embedded)
    newest = -math.inf
    # events and their matches make no reference cycles: the cyclic GC off while they stream
    # (with it on, its scans were a third of matching SigmaHQ's Windows set over 8k events)
    with gc_paused():
        for doc, matched in source(store, cs, stream_since, until, evaluation.failed):
            evaluation.event(doc, matched)
            newest = max(newest, epoch(doc))

    failed = _with_dependants(cs, evaluation.failed)
    book.forget(set(failed))
    docs = book.docs()
    docs = _apply_exceptions(store, docs)
    result = store.put_alerts(docs) if docs else None
    book.save(horizon=until.timestamp() - lookback.total_seconds() - cs.max_margin)
    baselines.save()
    cursor_at = min(until, max(now, datetime.fromtimestamp(newest, until.tzinfo) if math.isfinite(newest) else now))
    # a failed rule is retried from its old cursor next run
    store.put_states(CURSOR_KIND, {key: {"until": to_iso(cursor_at)} for key in keys if key not in failed})

    cases = book.touched()
    report = RunReport(
        backend=store.backend, since=to_iso(stream_since) if stream_since else "", until=to_iso(until),
        rules=len(cs.rules), problems=len(cs.problems), events=evaluation.stats.events,
        matches=sum(evaluation.stats.matches.values()),
        alerts_new=sum(1 for c in cases if not c.existed), alerts_updated=sum(1 for c in cases if c.existed),
        alert_ids=[c.id for c in cases],
        write_errors=list(result.errors) if result else [], failed=failed,
    )
    for c in cases:
        report.per_rule[c.rule.key] = report.per_rule.get(c.rule.key, 0) + 1
    # the anomaly detectors (detections.ml): every saved model of this store, same range
    from detections.ml import run_anomaly_detectors

    for alert in run_anomaly_detectors(store, stream_since or default_from, until):
        report.per_rule[alert["rule.id"]] = report.per_rule.get(alert["rule.id"], 0) + 1
        report.alert_ids.append(alert["event.id"])
    store.refresh()  # read your writes: `soc alerts` right after the run lists its alerts
    report.seconds = time.perf_counter() - started
    return report


def _with_dependants(cs: CompiledSet, failed: dict[str, str]) -> dict[str, str]:
    """The failed rules and every correlation built on one of them (its input is incomplete)."""
    out = dict(failed)
    changed = bool(out)
    while changed:
        changed = False
        for spec in cs.specs:
            if spec.key not in out and (broken := next((r for r in spec.refs if r in out), None)):
                out[spec.key] = f"input rule {broken} failed"
                changed = True
    return dict(sorted(out.items()))


def _apply_exceptions(store: Store, docs: list[Doc]) -> list[Doc]:
    """Analysts' exceptions (``detections.exceptions``) mark covered alerts suppressed, never drop them."""
    try:
        from detections.exceptions import apply_exceptions
    except ImportError:  # pragma: no cover - the module ships with the triage commands
        return docs
    return apply_exceptions(store, docs)


def watch(store: Store, interval: timedelta, rules_dirs: Sequence[Path | str] = (), *,
          lookback: timedelta = DEFAULT_LOOKBACK, since: datetime | None = None, iterations: int | None = None,
          on_report: Callable[[RunReport], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """Run every ``interval`` (rules compiled once) until interrupted or ``iterations`` runs are done."""
    cs = load_compiled(rules_dirs)
    runs = 0
    while iterations is None or runs < iterations:
        tick = time.monotonic()
        report = run_detections(store, since=since, lookback=lookback, compiled=cs)
        runs += 1
        if on_report is not None:
            on_report(report)
        if iterations is not None and runs >= iterations:
            break
        sleep(max(0.0, interval.total_seconds() - (time.monotonic() - tick)))
    return runs
