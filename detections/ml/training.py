"""Learning each entity kind's model from a chosen baseline period of the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from detections.ml.features import (
    DEFAULT_WINDOW_SECONDS,
    EntityKind,
    FeatureContext,
    collect,
    feature_matrix,
    learn_history,
)
from detections.ml.models import DEFAULT_DETECTOR, MIN_HISTORY, KindModel, fit_kind_model
from eventstore import Store
from eventstore.timeutil import to_iso

#: Below this many entity-windows a model would learn noise: training refuses.
MIN_WINDOWS = 50


@dataclass(frozen=True, slots=True)
class TrainOptions:
    window_seconds: int = DEFAULT_WINDOW_SECONDS
    detectors: tuple[str, ...] = ("iforest", "mad")
    alerting: str = DEFAULT_DETECTOR
    alert_rate: float = 0.001
    seed: int = 0
    min_history: int = MIN_HISTORY


def train_kind(store: Store, kind: EntityKind, since: datetime, until: datetime,
               options: TrainOptions = TrainOptions()) -> KindModel:
    data = collect(store, kind, since, until, options.window_seconds)
    if len(data) < MIN_WINDOWS:
        raise ValueError(f"{kind.name}: only {len(data)} entity-windows between {to_iso(since)} and "
                         f"{to_iso(until)}; need at least {MIN_WINDOWS} to learn a baseline")
    history = learn_history(kind, data)
    X = feature_matrix(kind, data, FeatureContext(history, training=True))
    model = fit_kind_model(kind, X, data.entities, history, window_seconds=options.window_seconds,
                           trained_since=to_iso(since), trained_until=to_iso(until),
                           detectors=options.detectors, alerting=options.alerting,
                           alert_rate=options.alert_rate, seed=options.seed, min_history=options.min_history)
    model.store_url = store.url
    return model


def train_models(store: Store, kinds: Sequence[EntityKind], since: datetime, until: datetime,
                 options: TrainOptions = TrainOptions()) -> tuple[list[KindModel], list[str]]:
    """Models for every kind with enough data, and one line per kind skipped and why."""
    models, skipped = [], []
    for kind in kinds:
        try:
            models.append(train_kind(store, kind, since, until, options))
        except ValueError as exc:
            skipped.append(str(exc))
    return models, skipped
