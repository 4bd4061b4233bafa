"""Why a window scored high: the features that drove it, each against its baseline.

A score alone tells the analyst nothing to check. Each alert carries the features whose
robust z-score was highest, phrased the way an analyst reads them ("distinct destination
ports 412, baseline p99 9"), with the baseline's source: the entity's own history or its
group's when the entity had too little. The z-scores are the same ones every detector
sees, so the explanation names what the detector was given, whichever detector fired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from detections.ml.features import KINDS
from detections.ml.models import KindModel

#: A feature is named as a driver when its z-score is at least this...
DRIVER_Z = 3.0
#: ...and at most this many are named (the strongest first).
MAX_DRIVERS = 4


def fmt(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):,}"
    return f"{value:,.2f}"


@dataclass(frozen=True, slots=True)
class Contribution:
    feature: str
    label: str
    value: float
    baseline_median: float
    baseline_p99: float
    z: float
    #: "entity" (its own history) or "group" (all entities of its kind)
    baseline: str

    @property
    def text(self) -> str:
        own = "" if self.baseline == "entity" else " (group)"
        return f"{self.label} {fmt(self.value)}, baseline p99 {fmt(self.baseline_p99)}{own}"

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        for name in ("value", "baseline_median", "baseline_p99"):
            doc[name] = round(doc[name], 3)
        return {**doc, "z": round(self.z, 2), "text": self.text}


def explain(model: KindModel, X: np.ndarray, entities: Sequence[str]) -> list[list[Contribution]]:
    """The drivers of each row, strongest first (at least one per row)."""
    if not len(X):
        return []
    labels = [f.label for f in KINDS[model.kind].features]
    z = model.baseline.zscores(X, entities)
    _, _, p99, rmed, own = model.baseline.stats(entities)
    out: list[list[Contribution]] = []
    for i in range(len(X)):
        order = np.argsort(-z[i], kind="stable")
        chosen = [j for j in order[:MAX_DRIVERS] if z[i, j] >= DRIVER_Z] or [int(order[0])]
        out.append([
            Contribution(model.features[j], labels[j], float(X[i, j]), float(rmed[i, j]), float(p99[i, j]),
                         float(z[i, j]), "entity" if own[i] else "group")
            for j in chosen
        ])
    return out


def summary(entity_type: str, entity: str, drivers: Sequence[Contribution]) -> str:
    return f"{entity_type} {entity}: " + "; ".join(c.text for c in drivers)
