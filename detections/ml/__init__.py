"""Anomaly detection learned from the province's own baseline, explained to the analyst.

Sigma rules catch what someone has described; these detectors catch what no rule names.
The pieces, each in its own module:

- ``features``: entity kinds (users, hosts, service identities), their windows and the
  features computed from the store's ``aggregate()`` (never by pulling every event);
- ``models``: the per-entity / per-group robust baseline and the detectors behind one
  interface (IsolationForest by default, median/MAD and LocalOutlierFactor);
- ``persistence``: models saved with a signed manifest, refused when tampered with;
- ``scoring``: windows scored, alerts raised in the same alert model as the Sigma rules;
- ``explain``: which features drove a score, each against its baseline.

``run_anomaly_detectors(store, since, until)`` is what the detection runner calls.
"""

from __future__ import annotations

from detections.ml.scoring import run_anomaly_detectors

__all__ = ["run_anomaly_detectors"]
