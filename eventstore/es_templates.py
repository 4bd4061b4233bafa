"""Elasticsearch index templates built from the one field table in ``eventstore.schema``.

Why a builder and not a JSON file: the table in ``schema.FIELDS`` is also what the SQLite
translator uses to compare values, so deriving the mappings from it keeps both backends
agreeing on what is an IP, a number or a date. Everything here is plain data (no client
calls); ``eventstore.es_store`` puts it on the node.

Layout for a prefix ``P``:

- component templates ``P-ecs-mappings`` (explicit ECS mappings plus dynamic rules) and
  ``P-settings`` (one shard; ``auto_expand_replicas: 0-1``, so no replica on a single node
  and one copy elsewhere as soon as a second data node joins: losing a node loses nothing);
- index template ``P-events`` over ``P-events-*``: rollover indices ``P-events-000001``,
  ``-000002``... behind the write alias ``P-events`` (and, read-only, the monthly indices
  ``P-events-YYYY.MM`` of stores made before rollover); ``P-alerts`` over the one
  ``P-alerts`` index, ``P-state`` over ``P-state``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from eventstore.schema import DYNAMIC_NAMESPACES, FIELDS, FieldType

#: Longest keyword value indexed (longer ones stay in ``_source`` but are not searchable);
#: Lucene refuses terms above 32766 bytes, which would otherwise refuse the whole event.
KEYWORD_IGNORE_ABOVE = 8191
#: Objects we never search inside (kept whole in ``_source``, not indexed).
NOT_INDEXED_OBJECTS = frozenset({"ztsoc.alert.history", "ztsoc.alert.explanation"})
#: Priority of our templates: above the stack's built-in ones (100..200). The prefix length is
#: added so that two prefixes never offer ES overlapping patterns at one priority, which it
#: refuses (the store also refuses prefixes containing ``-events`` for the same reason).
TEMPLATE_PRIORITY = 500

_DATE_FORMAT = "strict_date_optional_time||epoch_millis"


def _leaf_mapping(name: str, kind: FieldType) -> dict[str, Any]:
    """One field's mapping; ``object`` fields depend on whether we search inside them."""
    match kind:
        case "keyword":
            return {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
        case "date":
            return {"type": "date", "format": _DATE_FORMAT}
        case "float":
            # double, not ECS's float: sums and group keys then equal SQLite's REAL exactly
            # (a float field reads 0.7 back as 0.699999988...).
            return {"type": "double"}
        case "text":
            return {"type": "text"}
        case "object":
            if name in NOT_INDEXED_OBJECTS:
                return {"type": "object", "enabled": False}
            if any(ns == f"{name}." for ns in DYNAMIC_NAMESPACES):
                # Sub-fields mapped one by one by the dynamic templates (keyword).
                return {"type": "object", "dynamic": True}
            # Searchable by dotted path (dns.answers.data:1.2.3.4), one mapping for all keys.
            return {"type": "flattened", "ignore_above": KEYWORD_IGNORE_ABOVE}
        case _:
            return {"type": kind}  # ip, long, boolean: the ES type has the ECS name


def properties(fields: dict[str, FieldType] | None = None) -> dict[str, Any]:
    """Nested ``properties`` for dotted names; raises on a field that is both leaf and parent.

    Names are sorted, so a parent always comes before its children and is caught there.
    """
    root: dict[str, Any] = {}
    for name, kind in sorted((fields or FIELDS).items()):
        parts = name.split(".")
        node = root
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {"type": "object", "properties": {}})
            if "properties" not in child:
                raise ValueError(f"schema field {name!r}: {'.'.join(parts[: depth + 1])!r} is not an object")
            node = child["properties"]
        leaf = parts[-1]
        node[leaf] = _leaf_mapping(name, kind)
    return root


def dynamic_templates() -> list[dict[str, Any]]:
    """Any scalar under a dynamic namespace, and any unknown string, becomes a keyword."""
    keyword = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
    rules: list[dict[str, Any]] = []
    for ns in DYNAMIC_NAMESPACES:
        base = ns.rstrip(".").replace(".", "_")
        for json_type in ("string", "long", "double", "boolean"):
            rules.append({f"{base}_{json_type}_as_keyword": {
                "path_match": f"{ns}*", "match_mapping_type": json_type, "mapping": dict(keyword)}})
    rules.append({"strings_as_keyword": {"match_mapping_type": "string", "mapping": dict(keyword)}})
    return rules


def dynamic_mapping(path: str, json_type: str) -> dict[str, Any] | None:
    """The mapping the node's dynamic templates give a new field ``path`` holding a JSON ``json_type``.

    ``json_type`` is the node's name for it (``string``, ``long``, ``double``, ``boolean``).
    The store puts these mappings itself, one request per batch, instead of the node making
    one cluster-state update per document that brings a field (bench/evtx_history.py).
    ``None`` when no template decides it, or one uses a criterion not emulated here: the
    node then maps the field itself, as before.
    """
    for rule in dynamic_templates():
        (spec,) = rule.values()
        if set(spec) - {"path_match", "match_mapping_type", "mapping"}:
            return None
        if spec.get("match_mapping_type", "*") not in ("*", json_type):
            continue
        pattern = spec.get("path_match")
        if pattern is not None and not _simple_match(pattern, path):
            continue
        return dict(spec["mapping"])
    return None


def _simple_match(pattern: str, value: str) -> bool:
    """Elasticsearch's ``path_match``: ``*`` is any run of characters, nothing else is special."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), value, re.DOTALL) is not None


def ecs_mappings() -> dict[str, Any]:
    return {
        "dynamic": True,
        # An unknown string that looks like a date stays a keyword, as it is on SQLite.
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": dynamic_templates(),
        "properties": properties(),
    }


def settings() -> dict[str, Any]:
    return {
        "index": {
            "number_of_shards": 1,
            # 0 replicas on one node (green), 1 on a cluster: a killed node loses no acknowledged write.
            "auto_expand_replicas": "0-1",
            "mapping": {"total_fields": {"limit": 5000}},
        }
    }


def state_mappings() -> dict[str, Any]:
    return {
        "dynamic": False,
        "properties": {
            "kind": {"type": "keyword"},
            "key": {"type": "keyword"},
            "@timestamp": {"type": "date", "format": _DATE_FORMAT},
            "value": {"type": "object", "enabled": False},
        },
    }


#: The store's schema version, recorded in the state index's mapping ``_meta`` (1: a store
#: made before the version was recorded). ``init`` refuses a newer one and migrates an older one.
STORE_SCHEMA_VERSION = 2


def store_meta() -> dict[str, Any]:
    return {"managed_by": "ztsoc", "schema_version": STORE_SCHEMA_VERSION}


def index_names(prefix: str) -> dict[str, str]:
    """Concrete names and patterns for a prefix, in one place."""
    return {
        "events_pattern": f"{prefix}-events-*",
        # The write alias: new events go to its write index, which the store rolls over.
        "events_alias": f"{prefix}-events",
        "events_first": f"{prefix}-events-000001",
        "alerts": f"{prefix}-alerts",
        "state": f"{prefix}-state",
    }


def component_templates(prefix: str) -> dict[str, dict[str, Any]]:
    return {
        f"{prefix}-ecs-mappings": {"template": {"mappings": ecs_mappings()}},
        f"{prefix}-settings": {"template": {"settings": settings()}},
    }


def index_templates(prefix: str) -> dict[str, dict[str, Any]]:
    names = index_names(prefix)
    meta = {"managed_by": "ztsoc", "schema_hash": schema_hash()}
    priority = TEMPLATE_PRIORITY + len(prefix)
    shared = [f"{prefix}-settings", f"{prefix}-ecs-mappings"]
    return {
        f"{prefix}-events": {"index_patterns": [names["events_pattern"]], "composed_of": shared,
                             "priority": priority, "_meta": meta},
        f"{prefix}-alerts": {"index_patterns": [names["alerts"]], "composed_of": shared,
                             "priority": priority, "_meta": meta},
        # The state index carries the ECS mappings too (its own fields do not clash with them):
        # on a store without events it is where the node checks a query against field types.
        f"{prefix}-state": {"index_patterns": [names["state"]], "composed_of": shared,
                            "template": {"mappings": state_mappings()},
                            "priority": priority, "_meta": meta},
    }


def schema_hash() -> str:
    """Changes whenever the mappings would: lets ``init()`` skip re-putting unchanged templates."""
    payload = json.dumps([ecs_mappings(), settings(), state_mappings()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
