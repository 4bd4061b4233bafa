"""Correlation rules from the compiled-rule cache: their specs as plain data, the same as compiled.

Every correlation type (event_count, value_count, value_sum, value_avg, temporal with an
extended condition and aliases, temporal_ordered), a correlation of a correlation and
``generate``: the specs read back from the cache equal the freshly compiled ones and fire the
same alerts; a set read from the cache imports none of pySigma's rule model, YAML or pipelines
(the shipped rules hold seven correlations); a cache whose spec is not ours is rebuilt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from detections.sigma.cache import load_compiled_cached
from detections.sigma.engine import evaluate
from tests.test_sigma_correlation import RULES as BASIC

EXTRA = """
---
title: denied
name: denied
id: 0f0f0f0f-0000-4000-8000-000000000009
logsource: {product: ztsoc, service: auth}
detection:
  sel: {event.outcome: unknown}
  condition: sel
---
title: failed and (ok or not denied), per person
name: ext
id: 0f0f0f0f-0000-4000-8000-000000000010
correlation:
  type: temporal
  rules: [failed, ok, denied]
  group-by: [who]
  timespan: 2m
  aliases:
    who: {failed: user.name, ok: user.name, denied: source.user.name}
  condition: failed and (ok or not denied)
---
title: bytes summed
name: bytes_sum
id: 0f0f0f0f-0000-4000-8000-000000000011
correlation: {type: value_sum, rules: [failed], group-by: [source.ip], timespan: 1m, condition: {gt: 100, field: bytes},
              generate: true}
---
title: bytes averaged
name: bytes_avg
id: 0f0f0f0f-0000-4000-8000-000000000012
correlation: {type: value_avg, rules: [failed, ok], group-by: [source.ip], timespan: 1m,
              condition: {lte: 10, field: bytes}}
---
title: sums again
name: chain
id: 0f0f0f0f-0000-4000-8000-000000000013
correlation: {type: event_count, rules: [bytes_sum], group-by: [source.ip], timespan: 10m, condition: {neq: 1}}
"""
BASE = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "r.yml").write_text(BASIC + EXTRA)
    return folder


def _events() -> list[dict]:
    out = []
    plan = [("failure", "203.0.113.9", 60), ("failure", "203.0.113.9", 60), ("failure", "203.0.113.9", 60),
            ("success", "198.51.100.7", 1), ("unknown", "198.51.100.7", 0)] + [("failure", "192.0.2.1", 5)] * 6
    for n, (outcome, ip, size) in enumerate(plan):
        out.append({"event.id": f"e{n}", "@timestamp": (BASE + timedelta(seconds=5 * n)).isoformat().replace("+00:00", "Z"),
                    "event.dataset": "system.auth", "event.outcome": outcome, "source.ip": ip, "bytes": size,
                    "user.name": f"u{n % 3}", "source.user.name": "u1"})
    return out


def test_specs_from_the_cache_are_the_compiled_ones(tmp_path: Path) -> None:
    folder = _rules(tmp_path)
    _, fresh, _ = load_compiled_cached([folder])
    _, cached, info = load_compiled_cached([folder])
    assert info.hit and not fresh.problems
    assert {s.type for s in cached.specs} == {"event_count", "value_count", "value_sum", "value_avg", "temporal",
                                              "temporal_ordered"}
    assert cached.specs == fresh.specs and cached.margin == fresh.margin and cached.generating == fresh.generating
    assert {k: cached.rules[k].path for k in cached.rules} == {k: fresh.rules[k].path for k in fresh.rules}
    ext = next(s for s in cached.specs if s.key == "ext")
    assert ext.condition == ("and", ("ref", "failed"), ("or", ("ref", "ok"), ("not", ("ref", "denied"))))
    assert ext.group_fields["denied"] == ["source.user.name"]

    def alerts(cs) -> list[tuple]:
        return sorted((a["rule.id"], a["event.id"], a["ztsoc.alert.evidence_count"]) for a in evaluate(cs, _events())[0])

    fired = alerts(cached)
    assert fired == alerts(fresh)
    assert {"ext", "bytes_avg", "chain", "both", "many_users"} <= {rule for rule, _, _ in fired}  # chain: bytes_sum fired twice


def test_a_set_from_the_cache_imports_no_rule_model_yaml_or_pipeline(_cache_dir: Path) -> None:
    """The shipped rules (seven correlations) from a warm cache, their samples evaluated: none of
    pySigma is imported, not even its condition and value types (nor pyparsing under them)."""
    code = ("import json, sys; from detections.sigma.cache import load_compiled_cached; "
            "from detections.sigma.engine import evaluate; from detections.sigma.samples import expand; "
            "rs, cs, info = load_compiled_cached(); "
            "events = [e for r in rs.rules for e in expand(r.meta.samples.get('match') or [], prefix=r.key)]; "
            "alerts = evaluate(cs, sorted(events, key=lambda e: e['@timestamp']))[0]; "
            "print(json.dumps([info.hit, len(cs.specs), len(alerts), sorted(m for m in ('yaml', 'sigma.rule', "
            "'sigma.correlations', 'sigma.collection', 'sigma.processing.pipeline', 'jinja2', 'sigma.conditions', "
            "'sigma.types', 'pyparsing') if m in sys.modules)]))")
    env = {**os.environ, "SOC_CACHE_DIR": str(_cache_dir)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(2)]
    assert runs[0][0] is False and "sigma.rule" in runs[0][3]  # cold: compiled from the files
    hit, specs, alerts, imported = runs[1]
    assert hit and specs >= 7 and alerts > 0 and alerts == runs[0][2]
    assert imported == []


def test_a_spec_that_is_not_ours_is_rebuilt(tmp_path: Path) -> None:
    folder = _rules(tmp_path)
    _, fresh, info = load_compiled_cached([folder])
    doc = orjson.loads(info.path.read_bytes())
    doc["correlations"][0]["spec"]["type"] = "value_median"
    info.path.write_bytes(orjson.dumps(doc))
    _, again, info2 = load_compiled_cached([folder])
    assert not info2.hit and info2.written and again.specs == fresh.specs
