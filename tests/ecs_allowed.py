"""ECS's allowed values of the categorisation fields (ECS 8.x, ``ecs_flat.yml``), for the collectors' tests.

Kept here so the tests run on a fresh clone; ``check`` also reads ``../shared/data/ecs``
when it is there, so a newer ECS is checked against too.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

KIND = {"alert", "asset", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
OUTCOME = {"failure", "success", "unknown"}
CATEGORY_TYPES: dict[str, set[str]] = {
    "api": {"access", "admin", "allowed", "change", "creation", "deletion", "denied", "end", "info", "start", "user"},
    "authentication": {"start", "end", "info"},
    "configuration": {"access", "change", "creation", "deletion", "info"},
    "file": {"access", "change", "creation", "deletion", "info"},
    "host": {"access", "change", "end", "info", "start"},
    "iam": {"admin", "change", "creation", "deletion", "group", "info", "user"},
    "network": {"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"},
    "process": {"access", "change", "end", "info", "start"},
    "session": {"start", "end", "info"},
}
ECS_FLAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecs" / "ecs_flat.yml"


@cache
def _from_ecs() -> dict[str, Any] | None:
    if not ECS_FLAT.exists():
        return None
    import yaml

    flat = yaml.load(ECS_FLAT.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {
        "kind": {v["name"] for v in flat["event.kind"]["allowed_values"]},
        "outcome": {v["name"] for v in flat["event.outcome"]["allowed_values"]},
        "category": {v["name"]: set(v.get("expected_event_types") or []) for v in flat["event.category"]["allowed_values"]},
    }


def check(event: dict[str, Any]) -> None:
    """Assert an event's kind/category/type/outcome are ECS-allowed (types expected for a category),
    and that every field it has is in ``eventstore.schema`` (so both stores map it)."""
    from eventstore.schema import field_type

    unknown = sorted(k for k in event if field_type(k) is None)
    assert not unknown, f"fields missing from eventstore/schema.py: {unknown}"
    sources: list[tuple[set[str], set[str], dict[str, set[str]]]] = [(KIND, OUTCOME, CATEGORY_TYPES)]
    ecs = _from_ecs()
    if ecs is not None:
        sources.append((ecs["kind"], ecs["outcome"], ecs["category"]))
    for kinds, outcomes, categories in sources:
        assert event.get("event.kind") in kinds, event
        if "event.outcome" in event:
            assert event["event.outcome"] in outcomes, event
        cats = event.get("event.category") or []
        types = event.get("event.type") or []
        assert isinstance(cats, list) and isinstance(types, list)
        assert bool(cats) == bool(types), event
        for cat in cats:
            assert cat in categories, cat
        allowed = set().union(*(categories[c] for c in cats)) if cats else set()
        for t in types:
            assert t in allowed, (t, cats, event.get("event.action"))
