"""A small generated baseline with injected anomalies, shared by the ``test_ml_*`` files.

Seeds here (7, 8) differ from ``bench/anomaly.py``'s (1001+), so the benchmark's figures
are not measured on the data the tests were tuned against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from detections.ml.synthetic import Generator
from eventstore import Store

START = datetime(2026, 4, 6, tzinfo=UTC)
TRAIN_DAYS = 3
SPLIT = START + timedelta(days=TRAIN_DAYS)
END = SPLIT + timedelta(days=1)


@dataclass
class Seeded:
    gen: Generator
    events: int


def seed(store: Store, *, seed: int = 7, users: int = 30, hosts: int = 30, services: int = 15,
         per_kind: int = 3) -> Seeded:
    gen = Generator(START, days=TRAIN_DAYS + 1, seed=seed, n_users=users, n_hosts=hosts, n_services=services)
    n = 0
    for batch in gen.events(anomalies_from=SPLIT, per_kind=per_kind):
        n += store.write_events(batch).written
    return Seeded(gen, n)
