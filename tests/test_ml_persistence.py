"""Saved models: the same scores after a round trip; tampered or incompatible ones refused."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlseed import SPLIT, START, SeededDB, seeded_db

from detections.ml import persistence
from detections.ml.features import KINDS, FeatureContext, History, collect, feature_matrix
from detections.ml.models import KindModel, fit_kind_model
from detections.ml.persistence import ModelRejected, list_models, load_model, read_manifest, save_model
from eventstore import Store, open_store

__all__ = ["seeded_db"]


@pytest.fixture(scope="module")
def small(seeded_db: SeededDB) -> Iterator[tuple[Store, KindModel]]:
    store = open_store(f"sqlite:///{seeded_db.path}")
    yield store, seeded_db.models["host"]
    store.close()


@pytest.fixture
def saved(small: tuple[Store, KindModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(persistence.KEY_ENV, raising=False)
    save_model(small[1], tmp_path)
    return tmp_path


def _resign(directory: Path, kind: str, edit: dict[str, object]) -> None:
    """Edit a manifest and sign it again with the right key: what passes the HMAC but not the checks."""
    path = directory / f"{kind}.manifest.json"
    m = json.loads(path.read_text())
    m.update(edit)
    m["hmac"] = persistence._sign(persistence.signing_key(directory), m)
    path.write_text(json.dumps(m))


def test_round_trip_scores_identically(small: tuple[Store, KindModel], saved: Path) -> None:
    store, model = small
    loaded = load_model(saved, "host")
    kind = KINDS["host"]
    data = collect(store, kind, START, SPLIT)
    X = feature_matrix(kind, data, FeatureContext(model.history, training=False))
    X2 = feature_matrix(kind, data, FeatureContext(loaded.history, training=False))
    assert np.array_equal(X, X2)
    a, b = model.scores(X, data.entities), loaded.scores(X2, data.entities)
    assert set(a) == set(b) == {"iforest", "mad", "lof"}
    for name in a:
        assert np.allclose(a[name], b[name]), name
    assert loaded.thresholds == pytest.approx(model.thresholds)
    m = read_manifest(saved, "host")
    assert m["features"] == kind.feature_names
    assert m["trained_since"] == model.trained_since and m["trained_until"] == model.trained_until
    assert set(m["libraries"]) >= {"scikit-learn", "numpy", "skops", "python"}
    assert len(m["sha256"]) == 64 and len(m["hmac"]) == 64
    # the key is private to its owner
    assert (saved / persistence.KEY_FILE).stat().st_mode & 0o077 == 0
    assert [r["status"] for r in list_models(saved)] == ["ok"]


def test_tampered_payload_is_refused(saved: Path) -> None:
    payload = saved / "host.skops"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    with pytest.raises(ModelRejected, match="SHA-256 does not match"):
        load_model(saved, "host")
    # listing verifies as scoring does: an intact manifest does not make the model "ok"
    [row] = list_models(saved)
    assert row["status"].startswith("refused: ") and "SHA-256 does not match" in row["status"]


def test_tampered_manifest_is_refused(saved: Path) -> None:
    path = saved / "host.manifest.json"
    m = json.loads(path.read_text())
    m["thresholds"]["iforest"] = 99.0  # silence the detector
    path.write_text(json.dumps(m))
    with pytest.raises(ModelRejected, match="signature does not match"):
        load_model(saved, "host")
    assert list_models(saved)[0]["status"].startswith("refused: ")


def test_another_key_is_refused(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(persistence.KEY_ENV, "someone else's key")
    with pytest.raises(ModelRejected, match="signature does not match"):
        load_model(saved, "host")


@pytest.mark.parametrize(("edit", "reason"), [
    ({"features": ["connections", "bytes_out"]}, "this version computes"),
    ({"libraries": {"scikit-learn": "0.24.2", "numpy": np.__version__}}, "trained with scikit-learn 0.24.2"),
    ({"libraries": {"scikit-learn": persistence.library_versions()["scikit-learn"], "numpy": "1.0.0"}},
     "trained with numpy 1.0.0"),
    ({"format": 0}, "model format 0"),
    ({"kind": "printer"}, "unknown entity kind"),
    ({"detectors": ["iforest", "oracle"]}, "unknown detector"),
])
def test_incompatible_models_are_refused(saved: Path, edit: dict[str, object], reason: str) -> None:
    _resign(saved, "host", edit)
    with pytest.raises(ModelRejected, match=reason):
        load_model(saved, "host")


def test_untrusted_types_in_the_payload_are_refused(saved: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    # a payload whose hash and signature are right but which asks skops to rebuild a function we
    # never trust (os.system, inside a FunctionTransformer): refused before anything is built
    payload = sio.dumps({"detectors": {"iforest": {"estimator": FunctionTransformer(func=os.system)}}})
    (saved / "host.skops").write_bytes(payload)
    import hashlib

    _resign(saved, "host", {"sha256": hashlib.sha256(payload).hexdigest()})
    with pytest.raises(ModelRejected, match="outside the trusted list"):
        load_model(saved, "host")


def test_payload_of_the_wrong_shape_is_refused(saved: Path) -> None:
    import hashlib

    import skops.io as sio
    from sklearn.preprocessing import StandardScaler

    payload = sio.dumps({"detectors": {"iforest": {"estimator": StandardScaler()}}})
    (saved / "host.skops").write_bytes(payload)
    _resign(saved, "host", {"sha256": hashlib.sha256(payload).hexdigest()})
    with pytest.raises(ModelRejected, match="does not hold"):
        load_model(saved, "host")


def test_missing_model_and_missing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(persistence.KEY_ENV, raising=False)
    with pytest.raises(ModelRejected, match="no model for 'user'"):
        load_model(tmp_path, "user")
    (tmp_path / "user.manifest.json").write_text(json.dumps({"hmac": "0" * 64}))
    with pytest.raises(ModelRejected, match="no signing key"):
        load_model(tmp_path, "user")
    (tmp_path / "user.manifest.json").write_text("{not json")
    with pytest.raises(ModelRejected, match="unreadable manifest"):
        load_model(tmp_path, "user")


def test_env_key_signs_and_verifies(small: tuple[Store, KindModel], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(persistence.KEY_ENV, "kept-in-a-vault")
    tiny = fit_kind_model(KINDS["service"], np.abs(np.random.default_rng(0).normal(size=(200, 7))),
                          [f"s{i % 4}" for i in range(200)], History(), window_seconds=900,
                          trained_since="a", trained_until="b", detectors=("mad",), alerting="mad")
    save_model(tiny, tmp_path)
    assert not (tmp_path / persistence.KEY_FILE).exists()
    assert load_model(tmp_path, "service").alerting == "mad"


def _flip_payload(d: Path) -> None:
    data = bytearray((d / "host.skops").read_bytes())
    data[len(data) // 3] ^= 0x01
    (d / "host.skops").write_bytes(bytes(data))


def _foreign_payload(d: Path) -> None:
    import hashlib

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    payload = sio.dumps({"detectors": {"iforest": {"estimator": FunctionTransformer(func=os.system)}}})
    (d / "host.skops").write_bytes(payload)
    _resign(d, "host", {"sha256": hashlib.sha256(payload).hexdigest()})


def _edit_manifest(d: Path) -> None:
    m = json.loads((d / "host.manifest.json").read_text())
    m["alerting"] = "never"
    (d / "host.manifest.json").write_text(json.dumps(m))


#: ways to spoil a saved model, each of which scoring refuses
TAMPERING = {
    "payload byte flipped": _flip_payload,
    "payload deleted": lambda d: (d / "host.skops").unlink(),
    "payload with untrusted types, re-signed": _foreign_payload,
    "manifest edited": _edit_manifest,
    "incompatible, re-signed": lambda d: _resign(d, "host", {"format": 0}),
    "untouched": lambda d: None,
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_listing_and_loading_agree(saved: Path, how: str) -> None:
    """``soc ml models`` (list_models) says "ok" exactly when scoring (load_model) would use the model."""
    TAMPERING[how](saved)
    [row] = list_models(saved)
    try:
        load_model(saved, "host")
    except ModelRejected as exc:
        assert row["status"] == f"refused: {exc}"
    else:
        assert row["status"] == "ok" and how == "untouched"
