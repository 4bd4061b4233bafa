"""Scoring entity-windows and raising alerts in the same alert model as the Sigma rules.

An alert's rule is the detector (``rule.id: ml.<kind>.<detector>``); alerts are built by
the shared ``detections.alerts.AlertBook``, so their id is derived from detector, entity
and first window, and scoring the same period again refreshes the alert instead of
duplicating it; analysts' exceptions apply as they do to the Sigma rules. Each alert carries ``ztsoc.alert.score``,
``ztsoc.alert.threshold`` and ``ztsoc.alert.explanation`` (the driving features, each
against its baseline), plus the ids of a few events of the window as evidence.

``run_anomaly_detectors(store, since, until)`` is the hook for ``soc detect run|watch``:
it scores every kind that has a saved model and stores the alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from detections.alerts import AlertBook, RuleInfo
from detections.ml.explain import Contribution, explain, summary
from detections.ml.features import KINDS, FeatureContext, collect, feature_matrix
from detections.ml.models import KindModel
from detections.ml.persistence import ModelRejected, load_model, model_dir
from eventstore import Doc, Store, StoreError

log = logging.getLogger(__name__)

RULESET = "ml"
#: Evidence event ids kept on an alert (the window may hold thousands).
MAX_EVIDENCE = 20
#: score / threshold at or above which an alert is "high" rather than "medium"
HIGH_RATIO = 1.5


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    kind: str
    entity: str
    start: datetime
    end: datetime
    detector: str
    score: float
    threshold: float
    features: dict[str, float]
    drivers: list[Contribution]

    @property
    def rule_id(self) -> str:
        return f"ml.{self.kind}.{self.detector}"


def score_windows(store: Store, model: KindModel, since: datetime | None, until: datetime | None, *,
                  detector: str | None = None, all_windows: bool = False) -> list[ScoredWindow]:
    """The windows of ``[since, until)`` at or above the threshold (every window with ``all_windows``)."""
    kind = KINDS[model.kind]
    name = detector or model.alerting
    if name not in model.detectors:
        raise ValueError(f"model {model.kind!r} has no detector {name!r} (has {', '.join(model.detectors)})")
    if since is not None:  # whole windows only: a window cut at its start would look quiet
        w = model.window_seconds
        since = datetime.fromtimestamp(int(since.timestamp()) // w * w, UTC)
    data = collect(store, kind, since, until, model.window_seconds)
    X = feature_matrix(kind, data, FeatureContext(model.history, training=False))
    scores = model.scores(X, data.entities, [name])[name]
    threshold = model.thresholds[name]
    idx = np.arange(len(X)) if all_windows else np.flatnonzero(scores >= threshold)
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    ents = [data.entities[i] for i in idx]
    drivers = explain(model, X[idx], ents)
    out = []
    for i, e, d in zip(idx.tolist(), ents, drivers, strict=True):
        start = datetime.fromtimestamp(int(data.starts[i]), UTC)
        out.append(ScoredWindow(model.kind, e, start, start + timedelta(seconds=model.window_seconds), name,
                                float(scores[i]), threshold, dict(zip(model.features, X[i].tolist(), strict=True)),
                                d))
    return out


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rule_for(model: KindModel, detector: str) -> RuleInfo:
    """The alert model's rule for one detector of one kind (``rule.id: ml.<kind>.<detector>``).

    ``suppress`` 0: windows back to back for the same entity are one case (one alert whose
    last-seen moves on); a gap starts a new alert."""
    kind = KINDS[model.kind]
    return RuleInfo(
        key=f"ml.{model.kind}.{detector}", title=f"Anomalous {kind.name} activity ({detector})",
        level="medium", ruleset=RULESET, suppress=0.0, entity_fields=(kind.entity_field,), category="anomaly",
        description=f"{kind.description}: a {model.window_seconds // 60}-minute window unlike the "
                    f"entity's baseline (trained {model.trained_since} to {model.trained_until})",
        tags=kind.tags,
    )


def evidence_of(store: Store, w: ScoredWindow) -> tuple[list[str], int]:
    """Ids of the first events of the window (at most ``MAX_EVIDENCE``) and how many there are."""
    kind = KINDS[w.kind]
    queries = " OR ".join(f"({q})" for q in dict.fromkeys(a.query for a in kind.aggregations))
    res = store.search(f"{kind.entity_field}:{_quote(w.entity)} AND ({queries})", since=w.start, until=w.end,
                       limit=MAX_EVIDENCE, fields=["event.id"], descending=False)
    return [str(h["event.id"]) for h in res.hits if h.get("event.id")], res.total


def decorate(doc: Doc, w: ScoredWindow) -> Doc:
    """Add the anomaly's own fields: score, threshold, explanation, level from the margin."""
    kind = KINDS[w.kind]
    high = w.threshold > 0 and w.score >= HIGH_RATIO * w.threshold
    doc["ztsoc.alert.level"] = "high" if high else "medium"
    doc["event.severity"] = 73 if high else 47
    doc["event.risk_score"] = round(min(100.0, 50.0 * w.score / w.threshold), 1) if w.threshold > 0 else 100.0
    doc["ztsoc.alert.score"] = round(w.score, 4)
    doc["ztsoc.alert.threshold"] = round(w.threshold, 4)
    doc["ztsoc.alert.explanation"] = [c.to_doc() for c in w.drivers]
    doc["ztsoc.alert.entity.type"] = kind.entity_type
    doc["ztsoc.alert.entity.value"] = w.entity
    doc["message"] = summary(kind.entity_type, w.entity, w.drivers)
    related = {"user": "related.user", "ip": "related.ip"}.get(kind.entity_type)
    if related:
        doc[related] = [w.entity]
    return doc


def score_and_alert(store: Store, models: Sequence[KindModel], since: datetime | None, until: datetime | None,
                    *, detector: str | None = None, write: bool = True) -> list[Doc]:
    """Score, then raise or update alerts through the shared ``AlertBook`` (same ids, same cases)."""
    book = AlertBook(store if write else None)
    best: dict[str, ScoredWindow] = {}
    for model in models:
        name = detector or model.alerting
        rule = rule_for(model, name)
        kind = KINDS[model.kind]
        for w in score_windows(store, model, since, until, detector=name):
            evidence, _ = evidence_of(store, w)
            case = book.record(rule, {kind.entity_field: w.entity}, w.start.timestamp(), w.end.timestamp(),
                               evidence, value=w.score)
            if case.id not in best or w.score > best[case.id].score:
                best[case.id] = w
    docs = [decorate(doc, best[doc["event.id"]]) for doc in book.docs() if doc["event.id"] in best]
    if write and docs:
        docs = _apply_exceptions(store, docs)
        result = store.put_alerts(docs)
        for doc_id, reason in result.errors:
            log.warning("anomaly alert %s not stored: %s", doc_id, reason)
        horizon = (until or datetime.now(UTC)).timestamp() - max((m.window_seconds for m in models), default=0)
        book.save(horizon=horizon)
    return docs


def _apply_exceptions(store: Store, docs: list[Doc]) -> list[Doc]:
    """Analysts' exceptions mark covered alerts suppressed, as for the Sigma rules."""
    from detections.exceptions import apply_exceptions

    return apply_exceptions(store, docs)


def load_models(directory: Path | None = None, kinds: Sequence[str] | None = None,
                *, strict: bool = False) -> tuple[list[KindModel], list[str]]:
    """Saved models that pass verification, and why the others were refused or missing."""
    d = model_dir(directory)
    models, problems = [], []
    for name in kinds or list(KINDS):
        try:
            models.append(load_model(d, name))
        except ModelRejected as exc:
            if strict:
                raise
            problems.append(str(exc))
    return models, problems


def run_anomaly_detectors(store: Store, since: datetime | None, until: datetime | None,
                          models_dir: Path | None = None) -> list[Doc]:
    """Score ``[since, until)`` with every saved model and store the alerts (the runner's hook).

    Kinds without a model are skipped; a refused (tampered, incompatible) model is logged
    and skipped, never loaded; so is a model learned on another store's baseline (a model
    of one province's network says nothing about another's, nor about a test store)."""
    models, problems = load_models(models_dir)
    for p in problems:
        if "no model for" not in p:
            log.warning("anomaly model refused: %s", p)
    alerts: list[Doc] = []
    for m in models:
        if m.store_url not in ("", store.url):
            log.info("anomaly model %s skipped: trained on %s, not %s", m.kind, m.store_url, store.url)
            continue
        try:  # one kind failing (a refused query, a store hiccup) must not stop the others
            alerts.extend(score_and_alert(store, [m], since, until))
        except StoreError as exc:
            log.error("anomaly model %s not scored: %s", m.kind, exc)
    return alerts


def window_of_alert(alert: Doc) -> tuple[datetime, datetime]:
    from eventstore.timeutil import from_iso

    return from_iso(str(alert["ztsoc.alert.first_seen"])), from_iso(str(alert["ztsoc.alert.last_seen"]))


def explanation_rows(alert: Doc) -> list[dict[str, Any]]:
    raw = alert.get("ztsoc.alert.explanation") or []
    return [r for r in (raw if isinstance(raw, list) else [raw]) if isinstance(r, dict)]
