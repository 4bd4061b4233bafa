"""The baseline and the detectors behind one small interface.

Every detector sees the same input: each feature of an entity-window expressed as a
robust, one-sided z-score against a *baseline*: the entity's own history (median and
spread of its training windows) where it has at least ``min_history`` windows, its
group's (all entities of the kind) otherwise. Spread is the larger of 1.4826 x MAD and
(p99 - median) / 2.326, floored by half the group's, so a feature that is almost always
zero (failures, new sources) does not turn one ordinary event into a huge z. Only upward
deviations count: a host that is quieter than usual is not an incident.

Detectors (``DETECTORS`` registry): scikit-learn's ``IsolationForest`` (the default),
``LocalOutlierFactor`` in novelty mode, and ``mad``, the plain robust baseline (the norm
of the positive z-scores). Each detector's alert threshold is the ``1 - alert_rate``
quantile of its scores over the training windows.

Hand-written here: the per-entity/per-group robust scaling (vectorised numpy; scikit-learn's
``RobustScaler`` has no notion of per-entity statistics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from detections.ml.features import EntityKind, History

#: Windows of history an entity needs before its own baseline replaces its group's.
MIN_HISTORY = 30
#: training windows scored to set each detector's threshold (a random sample above this)
THRESHOLD_SAMPLE = 200_000
#: z-scores are capped so one absurd value cannot dominate a norm or a tree split.
Z_CAP = 1000.0
_P99_Z = 2.326  # the standard normal's 99th percentile
_P999_Z = 3.090  # ...and its 99.9th


def _spread(med: np.ndarray, mad: np.ndarray, p99: np.ndarray) -> np.ndarray:
    return np.maximum(1.4826 * mad, (p99 - med) / _P99_Z)


@dataclass(slots=True)
class Baseline:
    features: list[str]
    log_scale: np.ndarray  # bool per feature
    group_median: np.ndarray
    group_scale: np.ndarray
    group_p99: np.ndarray  # raw units, for explanations
    group_raw_median: np.ndarray
    entity_index: dict[str, int] = field(default_factory=dict)
    entity_median: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    entity_scale: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    entity_p99: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    entity_raw_median: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    entity_windows: np.ndarray = field(default_factory=lambda: np.zeros(0))
    min_history: int = MIN_HISTORY

    def transform(self, X: np.ndarray) -> np.ndarray:
        T = np.array(X, dtype=np.float64, copy=True)
        cols = self.log_scale
        T[:, cols] = np.log1p(np.maximum(T[:, cols], 0.0))
        return T

    def rows_for(self, entities: Sequence[str]) -> np.ndarray:
        """Index into the entity tables, -1 where the group's baseline applies."""
        idx = self.entity_index
        return np.fromiter((idx.get(e, -1) for e in entities), np.int64, len(entities))

    def stats(self, entities: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(median, scale, raw p99, raw median, uses-own-baseline) per row."""
        rows = self.rows_for(entities)
        own = rows >= 0
        n, f = len(rows), len(self.features)
        med = np.broadcast_to(self.group_median, (n, f)).copy()
        scale = np.broadcast_to(self.group_scale, (n, f)).copy()
        p99 = np.broadcast_to(self.group_p99, (n, f)).copy()
        rmed = np.broadcast_to(self.group_raw_median, (n, f)).copy()
        if own.any():
            med[own] = self.entity_median[rows[own]]
            scale[own] = self.entity_scale[rows[own]]
            p99[own] = self.entity_p99[rows[own]]
            rmed[own] = self.entity_raw_median[rows[own]]
        return med, scale, p99, rmed, own

    def zscores(self, X: np.ndarray, entities: Sequence[str]) -> np.ndarray:
        """Signed robust z-scores against each row's baseline."""
        med, scale, *_ = self.stats(entities)
        return np.clip((self.transform(X) - med) / scale, -Z_CAP, Z_CAP)

    def normalize(self, X: np.ndarray, entities: Sequence[str]) -> np.ndarray:
        """What the detectors see: upward deviations only."""
        return np.clip(self.zscores(X, entities), 0.0, Z_CAP)

    def to_state(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "log_scale": self.log_scale, "group_median": self.group_median,
            "group_scale": self.group_scale, "group_p99": self.group_p99,
            "group_raw_median": self.group_raw_median,
            "entities": list(self.entity_index), "entity_median": self.entity_median,
            "entity_scale": self.entity_scale, "entity_p99": self.entity_p99,
            "entity_raw_median": self.entity_raw_median, "entity_windows": self.entity_windows,
            "min_history": self.min_history,
        }

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> Baseline:
        return cls(
            features=list(s["features"]), log_scale=np.asarray(s["log_scale"], dtype=bool),
            group_median=s["group_median"], group_scale=s["group_scale"], group_p99=s["group_p99"],
            group_raw_median=s["group_raw_median"],
            entity_index={e: i for i, e in enumerate(s["entities"])},
            entity_median=s["entity_median"], entity_scale=s["entity_scale"], entity_p99=s["entity_p99"],
            entity_raw_median=s["entity_raw_median"], entity_windows=s["entity_windows"],
            min_history=int(s["min_history"]),
        )


def fit_baseline(kind: EntityKind, X: np.ndarray, entities: Sequence[str],
                 min_history: int = MIN_HISTORY) -> Baseline:
    log_scale = np.array([f.log_scale for f in kind.features], dtype=bool)
    b = Baseline(kind.feature_names, log_scale, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0),
                 min_history=min_history)
    T = b.transform(X)
    nf = X.shape[1]
    if len(X):
        g_med = np.median(T, axis=0)
        g_mad = np.median(np.abs(T - g_med), axis=0)
        g_p99 = np.quantile(T, 0.99, axis=0)
        g_p999 = np.quantile(T, 0.999, axis=0)
        b.group_p99 = np.quantile(X, 0.99, axis=0)
        b.group_raw_median = np.median(X, axis=0)
    else:
        g_med = g_mad = g_p99 = g_p999 = b.group_p99 = b.group_raw_median = np.zeros(nf)
    b.group_median = g_med
    # the group's p99.9 keeps something that is rare for everyone but ordinary for the
    # group as a whole (one denied call, one failed logon) from looking extreme
    b.group_scale = np.maximum(np.maximum(_spread(g_med, g_mad, g_p99), (g_p999 - g_med) / _P999_Z), 0.05)
    # per entity: sort once, then slice each entity's rows
    ents = np.asarray(entities, dtype=object)
    order = np.argsort(ents, kind="stable")
    sorted_e = ents[order]
    bounds = np.flatnonzero(sorted_e[1:] != sorted_e[:-1]) + 1 if len(ents) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], bounds]) if len(ents) else np.zeros(0, np.int64)
    ends = np.concatenate([bounds, [len(ents)]]) if len(ents) else np.zeros(0, np.int64)
    names, med, scale, p99, rmed, counts = [], [], [], [], [], []
    floor = 0.5 * b.group_scale
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s < min_history:
            continue
        rows = order[s:e]
        t, x = T[rows], X[rows]
        m = np.median(t, axis=0)
        names.append(str(sorted_e[s]))
        med.append(m)
        scale.append(np.maximum(_spread(m, np.median(np.abs(t - m), axis=0), np.quantile(t, 0.99, axis=0)), floor))
        p99.append(np.quantile(x, 0.99, axis=0))
        rmed.append(np.median(x, axis=0))
        counts.append(e - s)
    b.entity_index = {n: i for i, n in enumerate(names)}
    shape = (len(names), nf)
    b.entity_median = np.asarray(med).reshape(shape)
    b.entity_scale = np.asarray(scale).reshape(shape)
    b.entity_p99 = np.asarray(p99).reshape(shape)
    b.entity_raw_median = np.asarray(rmed).reshape(shape)
    b.entity_windows = np.asarray(counts, dtype=np.int64)
    return b


# -- detectors ---------------------------------------------------------------------------------


class Detector(Protocol):
    """Higher score = more anomalous. Input: ``Baseline.normalize`` output."""

    name: ClassVar[str]

    def fit(self, Z: np.ndarray, seed: int) -> None: ...

    def score(self, Z: np.ndarray) -> np.ndarray: ...

    def to_state(self) -> dict[str, Any]: ...


class RobustBaselineDetector:
    """The norm of the positive z-scores: no learning beyond the baseline itself."""

    name: ClassVar[str] = "mad"

    def fit(self, Z: np.ndarray, seed: int) -> None:
        return None

    def score(self, Z: np.ndarray) -> np.ndarray:
        return np.sqrt(np.einsum("ij,ij->i", Z, Z))

    def to_state(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RobustBaselineDetector:
        return cls()


def _with_norm(Z: np.ndarray) -> np.ndarray:
    """The z-scores sorted high to low, and their norm.

    Trees and neighbourhoods over the raw z-scores judge *which* feature deviates, and
    learn that every rare feature is "unusual" to about the same degree (a window with one
    denied call isolates as fast as one with a thousand rejected connections); a feature
    that never varied in training (a service that never changed source) gives them
    nothing to split on at all. Sorted, the columns say how far the strongest, second
    strongest... deviations go, which is what separates incidents from noise; which
    feature it was is the explanation's job."""
    if not len(Z):
        return Z
    S = -np.sort(-Z, axis=1)
    return np.column_stack([S, np.sqrt(np.einsum("ij,ij->i", Z, Z))])


class IsolationForestDetector:
    """scikit-learn's IsolationForest over the z-scores and their norm."""

    name: ClassVar[str] = "iforest"

    def __init__(self, estimator: Any = None, n_estimators: int = 100, max_samples: int = 8192) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        #: far more than scikit-learn's default 256: alerts live in the top 0.1-1% of windows,
        #: and shallow trees cannot rank points that far out (bench/anomaly.py: recall at 1%
        #: false alerts on host-side lateral movement 0.82 with 2048, 0.97 with 8192)
        self.max_samples = max_samples

    def fit(self, Z: np.ndarray, seed: int) -> None:
        from sklearn.ensemble import IsolationForest

        self.estimator = IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, max(len(Z), 1)),
                                         random_state=seed, n_jobs=1).fit(_with_norm(Z))

    def score(self, Z: np.ndarray) -> np.ndarray:
        if not len(Z):
            return np.zeros(0)
        return -np.asarray(self.estimator.score_samples(_with_norm(Z)))

    def to_state(self) -> dict[str, Any]:
        return {"estimator": self.estimator}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> IsolationForestDetector:
        return cls(state["estimator"])


class LocalOutlierFactorDetector:
    """LOF in novelty mode, fitted on at most ``max_train`` windows (it keeps them all)."""

    name: ClassVar[str] = "lof"

    def __init__(self, estimator: Any = None, max_train: int = 5000, n_neighbors: int = 35) -> None:
        self.estimator = estimator
        self.max_train = max_train
        self.n_neighbors = n_neighbors

    def fit(self, Z: np.ndarray, seed: int) -> None:
        from sklearn.neighbors import LocalOutlierFactor

        rng = np.random.default_rng(seed)
        Z = self._shape(Z)
        sample = Z[rng.choice(len(Z), self.max_train, replace=False)] if len(Z) > self.max_train else Z
        # duplicates (many all-zero windows) make LOF's reachability distances 0: jitter them
        sample = sample + rng.normal(0.0, 0.05, sample.shape)
        k = max(1, min(self.n_neighbors, len(sample) - 1))
        self.estimator = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(sample)

    def score(self, Z: np.ndarray) -> np.ndarray:
        if not len(Z):
            return np.zeros(0)
        return -np.asarray(self.estimator.score_samples(self._shape(Z)))

    @staticmethod
    def _shape(Z: np.ndarray) -> np.ndarray:
        # distances on a log scale: otherwise the densest point (all zeros) makes every
        # small deviation look as far out as a large one
        return np.log1p(_with_norm(Z))

    def to_state(self) -> dict[str, Any]:
        return {"estimator": self.estimator}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LocalOutlierFactorDetector:
        return cls(state["estimator"])


DETECTORS: dict[str, type[RobustBaselineDetector | IsolationForestDetector | LocalOutlierFactorDetector]] = {
    "iforest": IsolationForestDetector,
    "mad": RobustBaselineDetector,
    "lof": LocalOutlierFactorDetector,
}
DEFAULT_DETECTOR = "iforest"


def make_detector(name: str) -> Detector:
    cls = DETECTORS.get(name)
    if cls is None:
        raise ValueError(f"unknown detector {name!r}: expected one of {', '.join(DETECTORS)}")
    return cls()


@dataclass(slots=True)
class KindModel:
    """Everything needed to score one entity kind, as trained on one baseline period."""

    kind: str
    features: list[str]
    window_seconds: int
    trained_since: str
    trained_until: str
    n_windows: int
    baseline: Baseline
    history: History
    detectors: dict[str, Detector]
    thresholds: dict[str, float]
    alert_rate: float
    #: the detector whose threshold raises alerts
    alerting: str = DEFAULT_DETECTOR
    #: the store whose baseline it learned (the detection runner uses a model on that store only)
    store_url: str = ""

    def scores(self, X: np.ndarray, entities: Sequence[str], names: Sequence[str] | None = None
               ) -> dict[str, np.ndarray]:
        Z = self.baseline.normalize(X, entities)
        return {n: self.detectors[n].score(Z) for n in (names or self.detectors)}


def fit_kind_model(kind: EntityKind, X: np.ndarray, entities: Sequence[str], history: History, *,
                   window_seconds: int, trained_since: str, trained_until: str,
                   detectors: Sequence[str] = ("iforest", "mad"), alerting: str = DEFAULT_DETECTOR,
                   alert_rate: float = 0.001, seed: int = 0, min_history: int = MIN_HISTORY) -> KindModel:
    if alerting not in detectors:
        detectors = [*detectors, alerting]
    baseline = fit_baseline(kind, X, entities, min_history=min_history)
    Z = baseline.normalize(X, entities)
    fitted: dict[str, Detector] = {}
    thresholds: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    # thresholds from a sample: the 99.9th percentile of 200,000 windows is already sharp
    Zt = Z[rng.choice(len(Z), THRESHOLD_SAMPLE, replace=False)] if len(Z) > THRESHOLD_SAMPLE else Z
    for name in detectors:
        det = make_detector(name)
        det.fit(Z, seed)
        fitted[name] = det
        s = det.score(Zt)
        thresholds[name] = float(np.quantile(s, 1.0 - alert_rate)) if len(s) else float("inf")
    return KindModel(kind.name, kind.feature_names, window_seconds, trained_since, trained_until, len(X),
                     baseline, history, fitted, thresholds, alert_rate, alerting)
