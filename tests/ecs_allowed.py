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
#: The project's ECS field table: every ECS field ztsoc writes (ECS 8.x/9.x ``ecs_flat.yml`` names;
#: ``tests/test_ecs_fields.py`` checks them against it when it is there). A field not in ECS goes
#: under a declared custom namespace (``eventstore.schema.CUSTOM_NAMESPACES``), never here.
ECS_FIELDS: frozenset[str] = frozenset({
    "@timestamp",
    "client.address", "client.bytes", "client.domain", "client.ip", "client.mac", "client.packets",
    "client.port", "client.user.name",
    "destination.address", "destination.bytes", "destination.domain", "destination.ip", "destination.mac",
    "destination.packets", "destination.port", "destination.user.name",
    "dns.answers", "dns.header_flags", "dns.id", "dns.op_code", "dns.question.class", "dns.question.name",
    "dns.question.registered_domain", "dns.question.subdomain", "dns.question.type", "dns.resolved_ip",
    "dns.response_code", "dns.type",
    "event.action", "event.category", "event.code", "event.created", "event.dataset", "event.duration",
    "event.end", "event.id", "event.ingested", "event.kind", "event.module", "event.original",
    "event.outcome", "event.provider", "event.reason", "event.risk_score", "event.sequence",
    "event.severity", "event.start", "event.type",
    "file.name", "file.path",
    "group.domain", "group.id", "group.name",
    "host.hostname", "host.ip", "host.name", "host.os.type",
    "http.request.body.bytes", "http.request.bytes", "http.request.method", "http.request.referrer",
    "http.response.body.bytes", "http.response.bytes", "http.response.status_code", "http.version",
    "labels",
    "log.file.path", "log.level", "log.logger", "log.syslog.appname", "log.syslog.facility.code",
    "log.syslog.hostname", "log.syslog.msgid", "log.syslog.procid", "log.syslog.severity.code",
    "message",
    "network.application", "network.bytes", "network.community_id", "network.direction",
    "network.iana_number", "network.packets", "network.protocol", "network.transport", "network.type",
    "network.vlan.id",
    "observer.hostname", "observer.name", "observer.type",
    "orchestrator.namespace",
    "process.command_line", "process.executable", "process.name", "process.parent.name",
    "process.parent.pid", "process.pid", "process.working_directory",
    "related.hosts", "related.ip", "related.user",
    "rule.author", "rule.category", "rule.description", "rule.id", "rule.license", "rule.name",
    "rule.reference", "rule.ruleset", "rule.uuid", "rule.version",
    "server.address", "server.bytes", "server.domain", "server.ip", "server.mac", "server.packets",
    "server.port", "server.user.name",
    "service.name", "service.type",
    "source.address", "source.bytes", "source.domain", "source.geo.country_iso_code", "source.ip",
    "source.mac", "source.packets", "source.port", "source.user.name",
    "tags",
    "threat.framework", "threat.tactic.id", "threat.tactic.name", "threat.technique.id",
    "threat.technique.name", "threat.technique.subtechnique.id",
    "tls.cipher", "tls.client.ja3", "tls.client.server_name", "tls.client.supported_ciphers",
    "tls.established", "tls.version", "tls.version_protocol",
    "url.domain", "url.original", "url.path", "url.query",
    "user.domain", "user.effective.id", "user.effective.name", "user.id", "user.name", "user.roles",
    "user.target.domain", "user.target.id", "user.target.name",
    "user_agent.original",
})
#: ECS object fields whose sub-fields are free (``labels.*``, syslog structured data).
ECS_OPEN_OBJECTS: tuple[str, ...] = ("labels.", "log.syslog.structured_data.")
ECS_FLAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecs" / "ecs_flat.yml"


@cache
def _from_ecs() -> dict[str, Any] | None:
    flat = _flat()
    if flat is None:
        return None
    return {
        "kind": {v["name"] for v in flat["event.kind"]["allowed_values"]},
        "outcome": {v["name"] for v in flat["event.outcome"]["allowed_values"]},
        "category": {v["name"]: set(v.get("expected_event_types") or []) for v in flat["event.category"]["allowed_values"]},
    }


def ecs_names() -> set[str] | None:
    """Every field name ``ecs_flat.yml`` defines, when the reference data is there."""
    flat = _flat()
    return set(flat) if flat is not None else None


@cache
def _flat() -> dict[str, Any] | None:
    if not ECS_FLAT.exists():
        return None
    import yaml

    data: dict[str, Any] = yaml.load(ECS_FLAT.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return data


def not_ecs(names: Any) -> list[str]:
    """The names that are neither in the project's ECS table (nor an open ECS object's sub-field)
    nor in a declared custom namespace."""
    from eventstore.schema import is_custom

    return sorted(n for n in names if not (n in ECS_FIELDS or n.startswith(ECS_OPEN_OBJECTS) or is_custom(n)))


def check_names(event: dict[str, Any]) -> None:
    """Assert every field of an event is in ``eventstore.schema`` (so both stores map it) and is
    ECS or sits in a declared custom namespace."""
    from eventstore.schema import field_type

    unknown = sorted(k for k in event if field_type(k) is None)
    assert not unknown, f"fields missing from eventstore/schema.py: {unknown}"
    assert not_ecs(event) == [], f"fields neither ECS nor in a custom namespace: {not_ecs(event)}"


def check(event: dict[str, Any]) -> None:
    """Assert an event's kind/category/type/outcome are ECS-allowed (types expected for a category),
    and its field names (``check_names``)."""
    check_names(event)
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
