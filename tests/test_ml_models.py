"""Baselines, detectors and explanations on a seeded generated baseline with injected attacks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from mlseed import END, SPLIT, START, SeededDB, seeded_db
from sklearn.metrics import roc_auc_score

from detections.ml.explain import explain
from detections.ml.features import KINDS, FeatureContext, collect, feature_matrix
from detections.ml.models import DETECTORS, KindModel, make_detector
from eventstore import Store, open_store

__all__ = ["seeded_db"]


@pytest.fixture(scope="module")
def trained(seeded_db: SeededDB) -> Iterator[tuple[Store, SeededDB, dict[str, KindModel]]]:
    store = open_store(f"sqlite:///{seeded_db.path}")
    yield store, seeded_db, seeded_db.models
    store.close()


def _test_windows(store: Store, model: KindModel) -> tuple[np.ndarray, list[str], np.ndarray]:
    kind = KINDS[model.kind]
    data = collect(store, kind, SPLIT, END, model.window_seconds)
    return feature_matrix(kind, data, FeatureContext(model.history, training=False)), data.entities, data.starts


def test_every_injected_anomaly_outranks_normal_windows(trained: tuple[Store, SeededDB, dict[str, KindModel]]) -> None:
    store, seeded, models = trained
    for name, model in models.items():
        X, entities, starts = _test_windows(store, model)
        labels = {(lab.entity, lab.start) for lab in seeded.labels if lab.kind == name}
        y = np.array([(e, int(s)) in labels for e, s in zip(entities, starts.tolist(), strict=True)])
        assert y.sum() == len(labels) >= 3, name  # every injected window is an entity-window
        scores = model.scores(X, entities)
        for det, s in scores.items():
            auc = roc_auc_score(y, s)
            recall = float(np.mean(s[y] > np.quantile(s[~y], 0.99)))  # at 1% false alerts
            assert auc >= 0.95, (name, det, auc)
            assert recall >= 0.6, (name, det, recall)
        # the alerting detector's own (stricter, 0.1%) threshold: some attacks, almost no noise
        s = scores[model.alerting]
        fired = s >= model.thresholds[model.alerting]
        assert fired[y].mean() >= 0.5, (name, fired[y].mean())
        assert fired[~y].mean() <= 0.01, (name, fired[~y].mean())


def test_thresholds_are_the_training_quantile(trained: tuple[Store, SeededDB, dict[str, KindModel]]) -> None:
    store, _, models = trained
    model = models["host"]
    kind = KINDS["host"]
    data = collect(store, kind, START, SPLIT, model.window_seconds)
    X = feature_matrix(kind, data, FeatureContext(model.history, training=True))
    assert len(X) == model.n_windows
    for det, s in model.scores(X, data.entities).items():
        above = float(np.mean(s > model.thresholds[det]))
        assert above <= model.alert_rate + 1.0 / len(s), det


def test_entity_baseline_where_history_is_enough_group_otherwise(
        trained: tuple[Store, SeededDB, dict[str, KindModel]]) -> None:
    _, _, models = trained
    b = models["user"].baseline
    assert b.entity_index, "users with enough windows get their own baseline"
    counts = dict(zip(b.entity_index, b.entity_windows.tolist(), strict=True))
    assert min(counts.values()) >= b.min_history
    known = next(iter(b.entity_index))
    med, _, _, _, own = b.stats([known, "nobody-ever-seen"])
    assert own.tolist() == [True, False]
    assert np.allclose(med[1], b.group_median)
    # the same raw window is judged against each baseline: z differs by entity
    row = np.tile(b.entity_raw_median[b.entity_index[known]], (2, 1))
    z = b.zscores(row, [known, "nobody-ever-seen"])
    assert np.allclose(z[0], 0.0)


def test_explanation_names_the_features_against_their_baseline(
        trained: tuple[Store, SeededDB, dict[str, KindModel]]) -> None:
    store, seeded, models = trained
    model = models["user"]
    X, entities, starts = _test_windows(store, model)
    brute = [lab for lab in seeded.labels if lab.anomaly == "brute_force"]
    where = {(e, int(s)): i for i, (e, s) in enumerate(zip(entities, starts.tolist(), strict=True))}
    rows = [where[(lab.entity, lab.start)] for lab in brute]
    drivers = explain(model, X[rows], [entities[i] for i in rows])
    fails = model.features.index("failures")
    for i, d in zip(rows, drivers, strict=True):
        names = [c.feature for c in d]
        assert "failures" in names or "failure_ratio" in names, names
        c = next(c for c in d if c.feature in ("failures", "failure_ratio"))
        assert c.z >= 3.0 and c.value > c.baseline_p99
        if c.feature == "failures":
            assert c.value == X[i, fails]
            assert c.text.startswith(f"failed logons {int(X[i, fails])}, baseline p99 ")
        doc = c.to_doc()
        assert set(doc) >= {"feature", "label", "value", "baseline_p99", "baseline_median", "z", "baseline", "text"}


def test_detectors_share_one_interface() -> None:
    rng = np.random.default_rng(11)
    Z = np.abs(rng.normal(0, 1, (2000, 6)))
    odd = np.zeros((1, 6))
    odd[0, 2] = 40.0
    for name in DETECTORS:
        det = make_detector(name)
        det.fit(Z, 0)
        s = det.score(np.vstack([Z[:50], odd]))
        assert s[-1] > s[:-1].max(), name
        assert det.score(np.zeros((0, 6))).shape == (0,)
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("oracle")
