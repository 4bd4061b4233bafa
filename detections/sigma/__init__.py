"""Sigma detections: loading, field mapping, the embedded engine, correlation, Elasticsearch.

Versions, chosen deliberately (pyproject.toml pins the ranges):

- **pySigma 1.5.x** (``>=1.5.1,<2``). The newest Elasticsearch backend
  (pySigma-backend-elasticsearch 2.1) and sigma-cli 3.1, pySigma-pipeline-windows 2.0 and
  pySigma-pipeline-sysmon 2.0 all require pySigma < 2. Production needs the Elasticsearch
  backend (Lucene queries for ``es_eval``) and the admins' ``sigma`` command, so pySigma 2
  is out for now. pySigma 1.5 already parses Sigma v2 correlation rules (event_count,
  value_count, temporal, temporal_ordered, extended conditions), which is what we evaluate.
- **pySigma-backend-sqlite 2.0.0** (benchmark baseline only, the ``bench`` extra): the
  last release on pySigma 1.x (2.1 moved to pySigma 2), so the baseline runs in the same
  venv and converts the very same parsed rules; no second venv is needed.
- Correlation is evaluated by ztsoc (``correlation.py``), on both stores, over sliding
  windows: pySigma's ES|QL output buckets by clock time (misses bursts straddling a bucket
  boundary) and its EQL ``value_count`` counts events, not distinct values.

Modules: ``loader`` (files -> rules, problems with reasons), ``pipelines`` (pySigma
processing pipelines, also published as the ``ztsoc*`` pySigma plugins), ``matcher`` (the
embedded engine), ``correlation`` (Sigma v2 correlations), ``engine`` (rules + events ->
alerts, one pass), ``es_eval`` (Elasticsearch via pySigma's Lucene queries).
"""

from detections.sigma import native

native.MODULES.install()  # the compiled matcher, or its source when the build is stale (eventstore/native.py)
