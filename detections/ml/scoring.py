"""Scoring entity-windows and raising alerts in the same alert model as the Sigma rules.

An alert's rule is the detector (``rule.id: ml.<kind>.<detector>``); its id is derived
from detector, entity and window, so scoring the same period again refreshes the alert
instead of duplicating it. Each alert carries ``ztsoc.alert.score``,
``ztsoc.alert.threshold`` and ``ztsoc.alert.explanation`` (the driving features, each
against its baseline), plus the ids of a few events of the window as evidence.

``run_anomaly_detectors(store, since, until)`` is the hook for ``soc detect run|watch``:
it scores every kind that has a saved model and stores the alerts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from detections.ml.explain import Contribution, explain, summary
from detections.ml.features import KINDS, FeatureContext, collect, feature_matrix
from detections.ml.models import KindModel
from detections.ml.persistence import ModelRejected, load_model, model_dir
from eventstore import Doc, Store
from eventstore.timeutil import to_iso

log = logging.getLogger(__name__)

RULESET = "ztsoc-ml"
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


def alert_id(rule_id: str, entity: str, start: datetime) -> str:
    return hashlib.sha256(f"{rule_id}\x1f{entity}\x1f{to_iso(start)}".encode()).hexdigest()[:32]


def build_alert(store: Store | None, w: ScoredWindow) -> Doc:
    """The ECS alert document; ``store`` (when given) supplies the window's evidence ids."""
    kind = KINDS[w.kind]
    evidence: list[str] = []
    evidence_count = 0
    if store is not None:
        queries = " OR ".join(f"({a.query})" for a in kind.aggregations if not a.value_field)
        q = f"{kind.entity_field}:{_quote(w.entity)} AND ({queries})"
        res = store.search(q, since=w.start, until=w.end, limit=MAX_EVIDENCE, fields=["event.id"],
                           descending=False)
        evidence = [str(h["event.id"]) for h in res.hits if h.get("event.id")]
        evidence_count = res.total
    level = "high" if w.threshold > 0 and w.score >= HIGH_RATIO * w.threshold else "medium"
    doc: Doc = {
        "event.id": alert_id(w.rule_id, w.entity, w.start),
        "@timestamp": to_iso(w.end),
        "event.kind": "alert",
        "event.module": "ztsoc",
        "event.dataset": "ztsoc.alert",
        "event.risk_score": round(min(100.0, 50.0 * w.score / w.threshold), 1) if w.threshold > 0 else 100.0,
        "rule.id": w.rule_id,
        "rule.name": f"Anomalous {kind.name} activity ({w.detector})",
        "rule.description": f"{kind.description}: a {w.end - w.start} window unlike this entity's baseline",
        "rule.category": "anomaly",
        "rule.ruleset": RULESET,
        "message": summary(kind.entity_type, w.entity, w.drivers),
        kind.entity_field: w.entity,
        "ztsoc.alert.level": level,
        "ztsoc.alert.entity.type": kind.entity_type,
        "ztsoc.alert.entity.value": w.entity,
        "ztsoc.alert.group_key": w.entity,
        "ztsoc.alert.first_seen": to_iso(w.start),
        "ztsoc.alert.last_seen": to_iso(w.end),
        "ztsoc.alert.evidence": evidence,
        "ztsoc.alert.evidence_count": evidence_count,
        "ztsoc.alert.score": round(w.score, 4),
        "ztsoc.alert.threshold": round(w.threshold, 4),
        "ztsoc.alert.explanation": [c.to_doc() for c in w.drivers],
    }
    related = {"user": "related.user", "ip": "related.ip"}.get(kind.entity_type)
    if related:
        doc[related] = [w.entity]
    return doc


def score_and_alert(store: Store, models: Sequence[KindModel], since: datetime | None, until: datetime | None,
                    *, detector: str | None = None, write: bool = True) -> list[Doc]:
    alerts: list[Doc] = []
    for model in models:
        alerts.extend(build_alert(store, w) for w in score_windows(store, model, since, until, detector=detector))
    if write and alerts:
        result = store.put_alerts(alerts)
        for doc_id, reason in result.errors:
            log.warning("anomaly alert %s not stored: %s", doc_id, reason)
    return alerts


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
    and skipped, never loaded."""
    models, problems = load_models(models_dir)
    for p in problems:
        if "no model for" not in p:
            log.warning("anomaly model refused: %s", p)
    return score_and_alert(store, models, since, until)


def window_of_alert(alert: Doc) -> tuple[datetime, datetime]:
    from eventstore.timeutil import from_iso

    return from_iso(str(alert["ztsoc.alert.first_seen"])), from_iso(str(alert["ztsoc.alert.last_seen"]))


def explanation_rows(alert: Doc) -> list[dict[str, Any]]:
    raw = alert.get("ztsoc.alert.explanation") or []
    return [r for r in (raw if isinstance(raw, list) else [raw]) if isinstance(r, dict)]
