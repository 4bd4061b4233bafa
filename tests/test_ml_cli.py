"""``soc ml train|score|explain|models`` through Typer's CliRunner on a generated store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from mlseed import END, SPLIT, START, SeededDB, seeded_db, seeded_store
from typer.testing import CliRunner

from eventstore import Store
from soc_cli import output
from soc_cli.context import STATE
from soc_cli.main import app

Run = Callable[..., Result]
__all__ = ["seeded_db", "seeded_store"]


@pytest.fixture
def soc(seeded_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    monkeypatch.setenv("SOC_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("SOC_ML_KEY", raising=False)
    monkeypatch.delenv("SOC_STORE", raising=False)
    monkeypatch.setattr(output.console, "width", 250)
    runner = CliRunner()
    STATE._store, STATE.store_url = seeded_store, seeded_store.url

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args))

    yield run
    STATE._store, STATE.store_url = None, None


def test_train_score_explain(seeded_store: Store, seeded_db: SeededDB, soc: Run, tmp_path: Path) -> None:
    r = soc("ml", "train", "--since", START.isoformat(), "--until", SPLIT.isoformat(), "--json")
    assert r.exit_code == 0, r.output
    trained = json.loads(r.output)
    assert [t["kind"] for t in trained] == ["user", "host", "service"]
    assert all(t["windows"] > 50 and t["threshold"] > 0 for t in trained)
    assert (tmp_path / "models" / "host.manifest.json").exists()

    r = soc("ml", "models", "--json")
    assert r.exit_code == 0 and {m["status"] for m in json.loads(r.output)} == {"ok"}

    r = soc("ml", "score", "--since", SPLIT.isoformat(), "--until", END.isoformat(), "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) and seeded_store.count("*", index="alerts") == 0

    r = soc("ml", "score", "--since", SPLIT.isoformat(), "--until", END.isoformat(), "--ndjson")
    assert r.exit_code == 0, r.output
    alerts = [json.loads(line) for line in r.output.splitlines()]
    assert alerts and seeded_store.count("*", index="alerts") == len(alerts)
    entities = {lab.entity for lab in seeded_db.labels}
    assert entities & {a["ztsoc.alert.entity.value"] for a in alerts}

    top = alerts[0]
    r = soc("ml", "explain", top["event.id"])
    assert r.exit_code == 0, r.output
    assert "what drove it" in r.output and "against threshold" in r.output
    first = top["ztsoc.alert.explanation"][0]
    assert first["label"] in r.output
    r = soc("ml", "explain", top["event.id"], "--json")
    doc = json.loads(r.output)[0]
    assert doc["ztsoc.alert.explanation"][0]["text"] == first["text"]
    assert "baseline p99" in first["text"]


def test_refusals_and_errors(soc: Run, tmp_path: Path) -> None:
    r = soc("ml", "score", "--since", "1h")
    assert r.exit_code != 0 and "no usable model" in str(r.exception)
    r = soc("ml", "train", "--since", "1h", "--detector", "oracle")
    assert "unknown detector" in str(r.exception)
    r = soc("ml", "train", "--since", "1h")  # nothing in the last hour: nothing to learn from
    assert r.exit_code == 1
    r = soc("ml", "explain", "nope")
    assert "no alert" in str(r.exception)
    # a tampered model is named and refused
    assert soc("ml", "train", "--since", START.isoformat(), "--until", SPLIT.isoformat(), "--kind", "host"
               ).exit_code == 0
    manifest = tmp_path / "models" / "host.manifest.json"
    m = json.loads(manifest.read_text())
    m["thresholds"]["iforest"] = 1e9
    manifest.write_text(json.dumps(m))
    r = soc("ml", "models", "--json")
    assert r.exit_code == 1 and "signature does not match" in r.output
    r = soc("ml", "score", "--since", SPLIT.isoformat(), "--until", END.isoformat(), "--kind", "host")
    assert "no usable model" in str(r.exception)
    # a tampered payload under an intact manifest: listed as refused too, as scoring refuses it
    assert soc("ml", "train", "--since", START.isoformat(), "--until", SPLIT.isoformat(), "--kind", "host"
               ).exit_code == 0
    payload = tmp_path / "models" / "host.skops"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    r = soc("ml", "models", "--json")
    assert r.exit_code == 1 and "SHA-256 does not match" in r.output


def test_a_model_of_another_store_is_not_used(soc: Run, seeded_db: SeededDB, tmp_path: Path) -> None:
    from detections.ml.persistence import save_model

    for m in seeded_db.models.values():  # learned on the original file, not on this copy
        save_model(m, tmp_path / "models")
    r = soc("ml", "score", "--since", SPLIT.isoformat(), "--until", END.isoformat(), "--kind", "user")
    assert "user: trained on" in r.output and "(train on this store)" in " ".join(r.output.split())
    assert "no usable model" in str(r.exception)
