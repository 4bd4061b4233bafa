"""A small generated baseline with injected anomalies, shared by the ``test_ml_*`` files.

Seeds here (7, 8) differ from ``bench/anomaly.py``'s (1001+), so the benchmark's figures
are not measured on the data the tests were tuned against. The seeded SQLite file and the
models trained on it are built once per session; tests that write get their own copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detections.ml.features import KINDS
from detections.ml.models import DETECTORS, KindModel
from detections.ml.synthetic import Generator, Label
from detections.ml.training import TrainOptions, train_kind
from eventstore import Store, open_store

START = datetime(2026, 4, 6, tzinfo=UTC)
TRAIN_DAYS = 3
SPLIT = START + timedelta(days=TRAIN_DAYS)
END = SPLIT + timedelta(days=1)


@dataclass
class Seeded:
    gen: Generator
    events: int


@dataclass
class SeededDB:
    path: Path
    labels: list[Label]
    models: dict[str, KindModel]


def seed(store: Store, *, seed: int = 7, users: int = 30, hosts: int = 30, services: int = 15,
         per_kind: int = 3, days: float = TRAIN_DAYS + 1) -> Seeded:
    gen = Generator(START, days=days, seed=seed, n_users=users, n_hosts=hosts, n_services=services)
    n = 0
    for batch in gen.events(anomalies_from=SPLIT, per_kind=per_kind):
        n += store.write_events(batch).written
    return Seeded(gen, n)


_BUILT: list[SeededDB] = []


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> SeededDB:
    """30 users, 30 hosts, 15 services over 4 days, 3 of each attack on the last; models trained.

    Each test module imports this fixture (so it is defined once per module): the module-level
    cache makes it one build per session all the same."""
    if _BUILT:
        return _BUILT[0]
    path = tmp_path_factory.mktemp("mlseed") / "seeded.db"
    store = open_store(f"sqlite:///{path}")
    try:
        seeded = seed(store)
        opts = TrainOptions(detectors=tuple(DETECTORS), seed=3)
        models = {name: train_kind(store, kind, START, SPLIT, opts) for name, kind in KINDS.items()}
    finally:
        store.close()
    _BUILT.append(SeededDB(path, seeded.gen.labels, models))
    return _BUILT[0]


@pytest.fixture
def seeded_store(seeded_db: SeededDB, tmp_path: Path) -> Iterator[Store]:
    """A private, writable copy of the seeded store."""
    path = tmp_path / "seeded.db"
    shutil.copy(seeded_db.path, path)
    store = open_store(f"sqlite:///{path}")
    try:
        yield store
    finally:
        store.close()
