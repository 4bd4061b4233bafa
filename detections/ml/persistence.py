"""Saving and loading trained models, refusing any that were tampered with or do not fit.

Each entity kind's model is two files in the model directory (``--models DIR``,
``SOC_MODEL_DIR``, else ``<user data dir>/ztsoc/models``):

- ``<kind>.skops``: the model state serialised with **skops** (``skops.io``), never a
  pickle: skops rebuilds only the types it is told to trust, and we trust a fixed list
  (``TRUSTED_TYPES``: scikit-learn's tree, KD-tree and distance-metric types) instead of
  whatever the file names;
- ``<kind>.manifest.json``: feature list, training period, window, thresholds, library
  versions, the payload's SHA-256, and an HMAC-SHA256 over the whole manifest.

Loading checks, in order, before skops reads a byte of the payload: the manifest's HMAC
(key: ``SOC_ML_KEY``, else ``.signing-key`` in the model directory, created 0600 on first
save), the payload's SHA-256, the format version, the library versions (same scikit-learn
major.minor, same numpy major), and that the feature list equals the features this code
computes. Any mismatch raises ``ModelRejected`` naming the file and the reason; nothing
is loaded silently. The key beside the models guards against accidental or careless
edits and swapped files; set ``SOC_ML_KEY`` (kept elsewhere) so that someone who can write
the model directory cannot re-sign a model.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from detections.ml.features import KINDS, History
from detections.ml.models import DETECTORS, Baseline, Detector, KindModel

FORMAT_VERSION = 1
KEY_ENV = "SOC_ML_KEY"
DIR_ENV = "SOC_MODEL_DIR"
KEY_FILE = ".signing-key"
#: The only non-builtin types skops may rebuild (what IsolationForest and LOF contain).
TRUSTED_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
)


class ModelRejected(ValueError):
    """A saved model that must not be used: tampered with, incompatible, or missing."""


def model_dir(path: str | os.PathLike[str] | None = None) -> Path:
    if path:
        return Path(path)
    if env := os.environ.get(DIR_ENV):
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("ztsoc")) / "models"


def signing_key(directory: Path, *, create: bool = False) -> bytes:
    if env := os.environ.get(KEY_ENV):
        return env.encode()
    path = directory / KEY_FILE
    if path.exists():
        return path.read_bytes()
    if not create:
        raise ModelRejected(f"{path}: no signing key (set {KEY_ENV} or train a model first)")
    directory.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def library_versions() -> dict[str, str]:
    import sklearn
    import skops

    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "skops": skops.__version__,
            "python": platform.python_version()}


def _sign(key: bytes, manifest: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in manifest.items() if k != "hmac"}, sort_keys=True,
                      separators=(",", ":")).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _paths(directory: Path, kind: str) -> tuple[Path, Path]:
    return directory / f"{kind}.skops", directory / f"{kind}.manifest.json"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_model(model: KindModel, directory: Path) -> Path:
    """Write the payload, then its signed manifest; returns the manifest path."""
    import skops.io as sio

    directory.mkdir(parents=True, exist_ok=True)
    key = signing_key(directory, create=True)
    state = {
        "baseline": model.baseline.to_state(),
        "history": json.dumps(model.history.to_state()),
        "detectors": {n: d.to_state() for n, d in model.detectors.items()},
    }
    payload = sio.dumps(state)
    payload_path, manifest_path = _paths(directory, model.kind)
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "kind": model.kind,
        "features": list(model.features),
        "window_seconds": model.window_seconds,
        "trained_since": model.trained_since,
        "trained_until": model.trained_until,
        "n_windows": model.n_windows,
        "entities_with_own_baseline": len(model.baseline.entity_index),
        "detectors": list(model.detectors),
        "alerting": model.alerting,
        "thresholds": model.thresholds,
        "alert_rate": model.alert_rate,
        "store": model.store_url,
        "libraries": library_versions(),
        "payload": payload_path.name,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    manifest["hmac"] = _sign(key, manifest)
    _atomic_write(payload_path, payload)
    _atomic_write(manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return manifest_path


def read_manifest(directory: Path, kind: str) -> dict[str, Any]:
    """The manifest, verified (signature and compatibility), without touching the payload."""
    _, manifest_path = _paths(directory, kind)
    if not manifest_path.exists():
        raise ModelRejected(f"{manifest_path}: no model for {kind!r} (run `soc ml train`)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelRejected(f"{manifest_path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("hmac"), str):
        raise ModelRejected(f"{manifest_path}: manifest has no signature")
    key = signing_key(directory)
    if not hmac.compare_digest(manifest["hmac"], _sign(key, manifest)):
        raise ModelRejected(f"{manifest_path}: signature does not match (tampered with, or signed with another key)")
    _check_compatible(manifest_path, manifest)
    return manifest


def _check_compatible(path: Path, manifest: dict[str, Any]) -> None:
    if manifest.get("format") != FORMAT_VERSION:
        raise ModelRejected(f"{path}: model format {manifest.get('format')} is not {FORMAT_VERSION}")
    kind = KINDS.get(manifest.get("kind", ""))
    if kind is None:
        raise ModelRejected(f"{path}: unknown entity kind {manifest.get('kind')!r}")
    if manifest.get("features") != kind.feature_names:
        raise ModelRejected(f"{path}: trained on features {manifest.get('features')}, "
                            f"this version computes {kind.feature_names}: retrain")
    saved, now = manifest.get("libraries", {}), library_versions()
    if saved.get("scikit-learn", "").split(".")[:2] != now["scikit-learn"].split(".")[:2]:
        raise ModelRejected(f"{path}: trained with scikit-learn {saved.get('scikit-learn')}, "
                            f"running {now['scikit-learn']}: retrain")
    if saved.get("numpy", "").split(".")[:1] != now["numpy"].split(".")[:1]:
        raise ModelRejected(f"{path}: trained with numpy {saved.get('numpy')}, running {now['numpy']}: retrain")
    unknown = [d for d in manifest.get("detectors", []) if d not in DETECTORS]
    if unknown:
        raise ModelRejected(f"{path}: unknown detector(s) {unknown}")


def load_model(directory: Path, kind: str) -> KindModel:
    manifest = read_manifest(directory, kind)
    import skops.io as sio

    payload_path = directory / str(manifest["payload"])
    if payload_path.parent != directory or not payload_path.exists():
        raise ModelRejected(f"{payload_path}: payload missing")
    payload = payload_path.read_bytes()
    if not hmac.compare_digest(hashlib.sha256(payload).hexdigest(), str(manifest["sha256"])):
        raise ModelRejected(f"{payload_path}: SHA-256 does not match its manifest (tampered with)")
    untrusted = set(sio.get_untrusted_types(data=payload)) - set(TRUSTED_TYPES)
    if untrusted:
        raise ModelRejected(f"{payload_path}: contains types outside the trusted list: {sorted(untrusted)}")
    state = sio.loads(payload, trusted=list(TRUSTED_TYPES))
    _check_shape(payload_path, state, manifest)
    detectors: dict[str, Detector] = {
        n: DETECTORS[n].from_state(s) for n, s in state["detectors"].items()
    }
    return KindModel(
        kind=kind,
        features=list(manifest["features"]),
        window_seconds=int(manifest["window_seconds"]),
        trained_since=str(manifest["trained_since"]),
        trained_until=str(manifest["trained_until"]),
        n_windows=int(manifest["n_windows"]),
        baseline=Baseline.from_state(state["baseline"]),
        history=History.from_state(json.loads(state["history"])),
        detectors=detectors,
        thresholds={k: float(v) for k, v in manifest["thresholds"].items()},
        alert_rate=float(manifest["alert_rate"]),
        alerting=str(manifest["alerting"]),
        store_url=str(manifest.get("store") or ""),
    )


#: detector -> the scikit-learn class its state must hold (scikit-learn types are trusted by
#: skops by default, so the payload's shape is checked as well as its types)
ESTIMATOR_CLASSES = {"iforest": "IsolationForest", "lof": "LocalOutlierFactor"}


def _check_shape(path: Path, state: Any, manifest: dict[str, Any]) -> None:
    ok = (isinstance(state, dict) and isinstance(state.get("baseline"), dict)
          and isinstance(state.get("history"), str) and isinstance(state.get("detectors"), dict)
          and sorted(state["detectors"]) == sorted(manifest.get("detectors", [])))
    if ok:
        for name, det in state["detectors"].items():
            want = ESTIMATOR_CLASSES.get(name)
            if want and type(det.get("estimator")).__name__ != want:
                ok = False
    if not ok:
        raise ModelRejected(f"{path}: payload does not hold the model its manifest describes")


def list_models(directory: Path) -> list[dict[str, Any]]:
    """Every manifest in the directory, with ``status`` ok or the reason it would be refused.

    "ok" means exactly what scoring needs: ``load_model`` succeeds (signature, compatibility,
    payload hash, trusted types, shape), not just that the manifest is intact; a listing that
    read only the manifest called a model with a tampered payload "ok" while scoring refused it.
    """
    out = []
    for path in sorted(directory.glob("*.manifest.json")):
        kind = path.name.removesuffix(".manifest.json")
        try:
            m = read_manifest(directory, kind)
            load_model(directory, kind)
            out.append({**m, "status": "ok"})
        except ModelRejected as exc:
            out.append({"kind": kind, "status": f"refused: {exc}"})
    return out
