"""Scoring into alerts on both stores: the Sigma alert model, explained, idempotent on rerun."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlseed import END, SPLIT, START, SeededDB, seed, seeded_db, seeded_store

from detections.ml import run_anomaly_detectors
from detections.ml.features import KINDS
from detections.ml.persistence import save_model
from detections.ml.scoring import explanation_rows, score_and_alert, score_windows
from detections.ml.training import TrainOptions, train_models
from eventstore import Store

__all__ = ["seeded_db", "seeded_store"]


def test_alerts_from_both_stores(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOC_ML_KEY", raising=False)
    seeded = seed(store, users=15, hosts=15, services=8, per_kind=2)
    models, skipped = train_models(store, list(KINDS.values()), START, SPLIT, TrainOptions(seed=2))
    assert skipped == [] and [m.kind for m in models] == list(KINDS)
    for m in models:
        save_model(m, tmp_path)

    alerts = run_anomaly_detectors(store, SPLIT, END, models_dir=tmp_path)
    assert alerts, "the injected attacks raise alerts"
    labels = {(lab.kind, lab.entity) for lab in seeded.gen.labels}
    hits = {(a["rule.id"].split(".")[1], a["ztsoc.alert.entity.value"]) for a in alerts}
    assert len(hits & labels) >= len(labels) // 2, (hits, labels)

    for a in alerts:
        # the same alert model as the Sigma rules, plus the anomaly's own fields
        assert a["event.kind"] == "alert" and a["rule.ruleset"] == "ml"
        assert a["rule.id"] in {f"ml.{k}.iforest" for k in KINDS}
        assert a["ztsoc.alert.score"] >= a["ztsoc.alert.threshold"] > 0
        assert a["ztsoc.alert.level"] in ("medium", "high")
        assert a["ztsoc.alert.entity.type"] in ("user", "ip", "service")
        assert a["ztsoc.alert.first_seen"] < a["ztsoc.alert.last_seen"]
        assert 0 < len(a["ztsoc.alert.evidence"]) <= a["ztsoc.alert.evidence_count"]
        rows = explanation_rows(a)
        assert rows and all(r["text"].count("baseline p99") == 1 for r in rows)
        assert rows[0]["text"] in a["message"]
        stored = store.get_alert(a["event.id"])
        assert stored is not None
        assert explanation_rows(stored)[0]["text"] == rows[0]["text"]
        assert stored["ztsoc.alert.status"] == "open"
        # evidence points at real events of that entity
        ev = store.get_event(a["ztsoc.alert.evidence"][0])
        assert ev is not None and a["ztsoc.alert.entity.value"] in {
            ev.get("user.name"), ev.get("source.ip"), ev.get("source.user.name")}

    # a brute force is explained by its failures
    brute = {lab.entity for lab in seeded.gen.labels if lab.anomaly == "brute_force"}
    for a in alerts:
        if a["ztsoc.alert.entity.value"] in brute and a["rule.id"] == "ml.user.iforest":
            feats = [r["feature"] for r in explanation_rows(a)]
            if "failures" in feats:
                break
    else:
        pytest.fail("no brute-force alert names its failed logons")

    # a rerun of the same period updates the same alerts: same ids, nothing added
    before = store.count("*", index="alerts")
    again = run_anomaly_detectors(store, SPLIT, END, models_dir=tmp_path)
    assert sorted(a["event.id"] for a in again) == sorted(a["event.id"] for a in alerts)
    assert store.count("*", index="alerts") == before


def test_score_without_writing_and_with_another_detector(store: Store) -> None:
    seed(store, users=12, hosts=12, services=6, per_kind=1)
    models, _ = train_models(store, [KINDS["host"]], START, SPLIT,
                             TrainOptions(detectors=("iforest", "mad"), seed=4))
    (model,) = models
    everything = score_windows(store, model, SPLIT, END, all_windows=True)
    above = score_windows(store, model, SPLIT, END, detector="mad")
    assert len(everything) > len(above) > 0
    assert all(w.score >= w.threshold == model.thresholds["mad"] for w in above)
    assert [w.score for w in everything] == sorted((w.score for w in everything), reverse=True)
    docs = score_and_alert(store, models, SPLIT, END, detector="mad", write=False)
    assert docs and all(d["rule.id"] == "ml.host.mad" for d in docs)
    assert store.count("*", index="alerts") == 0
    with pytest.raises(ValueError, match="no detector 'lof'"):
        score_windows(store, model, SPLIT, END, detector="lof")


def test_no_models_means_no_alerts(store: Store, tmp_path: Path) -> None:
    assert run_anomaly_detectors(store, START, END, models_dir=tmp_path) == []


def test_detect_run_includes_the_anomaly_detectors(seeded_store: Store, seeded_db: SeededDB, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from detections.runner import run_detections

    sqlite_store = seeded_store
    monkeypatch.delenv("SOC_ML_KEY", raising=False)
    models = list(seeded_db.models.values())
    for m in models:
        m.store_url = sqlite_store.url  # learned on the seeded original: this copy is the same store
        save_model(m, tmp_path / "models")
    monkeypatch.setenv("SOC_MODEL_DIR", str(tmp_path / "models"))
    report = run_detections(sqlite_store, since=SPLIT, until=END)
    ml_rules = {k: n for k, n in report.per_rule.items() if k.startswith("ml.")}
    assert ml_rules and sum(ml_rules.values()) == sqlite_store.count("rule.ruleset:ml", index="alerts")
    # a model learned on another store is never applied to this one
    other = tmp_path / "other"
    for m in models:
        m.store_url = "sqlite:///somewhere/else.db"
        save_model(m, other)
    assert run_anomaly_detectors(sqlite_store, SPLIT, END, models_dir=other) == []
