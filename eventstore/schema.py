"""The event schema: every field ztsoc writes, with its ECS type.

One table drives the Elasticsearch index templates (explicit mappings), the SQLite query
translator (how to compare a value: as an IP, a number, a date or a keyword) and the
schema test (every field written must be listed here, or sit under a namespace left
dynamic on purpose: ``winlog.event_data.*`` and ``labels.*``). Names and types come from
ECS (``../shared/data/ecs/ecs_flat.yml``); a field ECS does not define lives in a declared
custom namespace (``CUSTOM_NAMESPACES``): ``ztsoc.*`` is our own (alert lifecycle, collector
bookkeeping, what ECS lacks such as JA4 or ICMP type and code), ``winlog.*`` is Elastic's
Windows integration's. ``tests/test_ecs_fields.py`` holds every other name to ECS.
"""

from __future__ import annotations

from typing import Literal

FieldType = Literal["keyword", "ip", "long", "float", "date", "boolean", "text", "object"]

_ENDPOINT: tuple[tuple[str, FieldType], ...] = (
    ("ip", "ip"), ("port", "long"), ("bytes", "long"), ("packets", "long"), ("mac", "keyword"),
    ("domain", "keyword"), ("address", "keyword"), ("user.name", "keyword"),
)

FIELDS: dict[str, FieldType] = {
    "@timestamp": "date",
    "message": "text",
    "tags": "keyword",
    "labels": "object",
    # event.*
    "event.id": "keyword",
    "event.kind": "keyword",
    "event.category": "keyword",
    "event.type": "keyword",
    "event.action": "keyword",
    "event.outcome": "keyword",
    "event.dataset": "keyword",
    "event.module": "keyword",
    "event.provider": "keyword",
    "event.code": "keyword",
    "event.reason": "keyword",
    "event.severity": "long",
    "event.risk_score": "float",
    "event.start": "date",
    "event.end": "date",
    "event.duration": "long",
    "event.created": "date",
    "event.ingested": "date",
    "event.original": "keyword",
    "event.sequence": "long",
    # source / destination / client / server
    **{f"{side}.{name}": kind for side in ("source", "destination", "client", "server") for name, kind in _ENDPOINT},
    # network.*
    "network.transport": "keyword",
    "network.type": "keyword",
    "network.protocol": "keyword",
    "network.application": "keyword",
    "network.direction": "keyword",
    "network.community_id": "keyword",
    "network.bytes": "long",
    "network.packets": "long",
    "network.iana_number": "keyword",
    "network.vlan.id": "keyword",
    # dns.*
    "dns.type": "keyword",
    "dns.id": "keyword",
    "dns.op_code": "keyword",
    "dns.response_code": "keyword",
    "dns.header_flags": "keyword",
    "dns.question.name": "keyword",
    "dns.question.type": "keyword",
    "dns.question.class": "keyword",
    "dns.question.registered_domain": "keyword",
    "dns.question.subdomain": "keyword",
    "dns.answers": "object",
    "dns.resolved_ip": "ip",
    # http / url / user_agent
    "http.request.method": "keyword",
    "http.request.bytes": "long",
    "http.request.referrer": "keyword",
    "http.response.status_code": "long",
    "http.response.bytes": "long",
    "http.version": "keyword",
    "url.original": "keyword",
    "url.path": "keyword",
    "url.domain": "keyword",
    "url.query": "keyword",
    "user_agent.original": "keyword",
    # tls
    "tls.version": "keyword",
    "tls.version_protocol": "keyword",
    "tls.cipher": "keyword",
    "tls.established": "boolean",
    "tls.client.server_name": "keyword",
    "tls.client.ja3": "keyword",
    "ztsoc.tls.client.ja4": "keyword",  # JA4 (FoxIO): ECS has ja3 only
    "tls.client.supported_ciphers": "keyword",
    # icmp: ECS has no ICMP fields
    "ztsoc.icmp.type": "long",
    "ztsoc.icmp.code": "long",
    # user / host / process / service
    "user.name": "keyword",
    "user.id": "keyword",
    "user.domain": "keyword",
    "user.roles": "keyword",
    "user.target.name": "keyword",
    "user.target.domain": "keyword",
    "user.target.id": "keyword",
    "user.effective.name": "keyword",
    "user.effective.id": "keyword",
    "group.name": "keyword",
    "group.id": "keyword",
    "group.domain": "keyword",
    "host.name": "keyword",
    "host.hostname": "keyword",
    "host.ip": "ip",
    "host.os.type": "keyword",
    "file.name": "keyword",
    "file.path": "keyword",
    "process.name": "keyword",
    "process.pid": "long",
    "process.command_line": "keyword",
    "process.executable": "keyword",
    "ztsoc.process.tty.name": "keyword",  # ECS process.tty has device numbers, no name
    "process.working_directory": "keyword",
    "process.parent.name": "keyword",
    "process.parent.pid": "long",
    "service.name": "keyword",
    "service.type": "keyword",
    "log.level": "keyword",
    "log.logger": "keyword",
    "log.file.path": "keyword",
    "ztsoc.log.offset": "long",  # byte offset of the line (Filebeat's log.offset is not ECS)
    "log.syslog.appname": "keyword",
    "log.syslog.hostname": "keyword",
    "log.syslog.procid": "keyword",
    "log.syslog.facility.code": "long",
    "log.syslog.severity.code": "long",
    "log.syslog.msgid": "keyword",
    "observer.name": "keyword",
    "observer.type": "keyword",
    "observer.hostname": "keyword",
    "source.geo.country_iso_code": "keyword",
    "related.ip": "ip",
    "related.user": "keyword",
    "related.hosts": "keyword",
    # Windows: winlog.* is not ECS but Elastic's Windows integration (Winlogbeat) namespace, which
    # Sigma's Windows pipelines and Kibana's Windows views use: a declared custom namespace
    "winlog.channel": "keyword",
    "winlog.provider_name": "keyword",
    "winlog.computer_name": "keyword",
    "winlog.event_id": "keyword",
    "winlog.record_id": "keyword",
    "winlog.logon.type": "keyword",
    "winlog.logon.id": "keyword",
    "winlog.event_data": "object",
    "winlog.provider_guid": "keyword",
    "winlog.level": "keyword",
    "winlog.task": "keyword",
    "winlog.opcode": "keyword",
    "winlog.keywords": "keyword",
    "winlog.version": "keyword",
    "winlog.process.pid": "long",
    "winlog.process.thread.id": "long",
    "winlog.user.identifier": "keyword",
    # collectors' own (auth logs)
    "ztsoc.auth.method": "keyword",
    "ztsoc.auth.attempts": "long",
    "ztsoc.auth.repeated": "long",
    "ztsoc.journald.uid": "keyword",
    "ztsoc.journald.transport": "keyword",
    # rule / threat (alerts)
    "rule.id": "keyword",
    "rule.uuid": "keyword",
    "rule.name": "keyword",
    "rule.description": "text",
    "rule.category": "keyword",
    "rule.ruleset": "keyword",
    "rule.version": "keyword",
    "rule.author": "keyword",
    "rule.reference": "keyword",
    "rule.license": "keyword",
    "threat.framework": "keyword",
    "threat.tactic.id": "keyword",
    "threat.tactic.name": "keyword",
    "threat.technique.id": "keyword",
    "threat.technique.name": "keyword",
    "threat.technique.subtechnique.id": "keyword",
    # ztsoc.* (ours)
    "ztsoc.source.name": "keyword",
    # network capture (collectors/pcap): Zeek conn_state and what an ICMP error quotes
    "ztsoc.flow.state": "keyword",
    # what the sequence numbers of a decoded TCP flow showed (collectors/pcap/tcpstream.py)
    "ztsoc.tcp.retransmitted_segments": "long",
    "ztsoc.tcp.out_of_order_segments": "long",
    "ztsoc.tcp.gaps": "long",
    "ztsoc.tcp.reorder_overflows": "long",  # the reordering window stopped waiting, a bound reached
    "ztsoc.icmp.quoted.transport": "long",
    "ztsoc.icmp.quoted.destination.ip": "ip",
    "ztsoc.icmp.quoted.destination.port": "long",
    "http.request.body.bytes": "long",
    "http.response.body.bytes": "long",
    "ztsoc.source.position": "keyword",
    "ztsoc.alert.status": "keyword",
    "ztsoc.alert.assignee": "keyword",
    "ztsoc.alert.close_reason": "keyword",
    "ztsoc.alert.level": "keyword",
    "ztsoc.alert.entity.type": "keyword",
    "ztsoc.alert.entity.value": "keyword",
    "ztsoc.alert.group_key": "keyword",
    "ztsoc.alert.first_seen": "date",
    "ztsoc.alert.last_seen": "date",
    "ztsoc.alert.evidence": "keyword",
    "ztsoc.alert.evidence_count": "long",
    "ztsoc.alert.suppressed": "boolean",
    "ztsoc.alert.exception_id": "keyword",
    "ztsoc.alert.score": "float",
    "ztsoc.alert.threshold": "float",
    "ztsoc.alert.explanation": "object",
    "ztsoc.alert.guide": "text",
    "ztsoc.alert.response": "text",
    "ztsoc.alert.history": "object",
    "ztsoc.exercise.id": "keyword",
    "ztsoc.exercise.run": "keyword",
    "ztsoc.policy.decision_id": "keyword",
    "ztsoc.policy.rule": "keyword",
    "ztsoc.policy.policy": "keyword",
    "ztsoc.policy.reason": "keyword",
    "ztsoc.policy.dry_run": "boolean",
    "ztsoc.policy.would_deny": "boolean",
    "ztsoc.policy.risk": "float",
    "ztsoc.policy.risk_level": "keyword",
    "ztsoc.policy.version": "keyword",
    "ztsoc.policy.scopes": "keyword",
    "ztsoc.policy.issuer": "keyword",
    "ztsoc.policy.authenticated": "boolean",
    "orchestrator.namespace": "keyword",
}

#: Namespaces of fields that are not ECS, declared: ours, and the Windows integration's.
CUSTOM_NAMESPACES: tuple[str, ...] = ("ztsoc.", "winlog.")


def is_custom(name: str) -> bool:
    """Whether a field sits in a declared custom namespace (so ECS is not asked about it)."""
    return name.startswith(CUSTOM_NAMESPACES)


#: Namespaces whose sub-fields are not listed one by one: mapped dynamically as keyword.
DYNAMIC_NAMESPACES: tuple[str, ...] = ("winlog.event_data.", "winlog.user_data.", "labels.", "ztsoc.features.",
                                       "log.syslog.structured_data.")

#: Fields SQLite keeps in their own indexed columns beside the JSON document.
HOT_FIELDS: tuple[str, ...] = ("@timestamp", "event.dataset", "source.ip", "destination.ip", "user.name", "host.name")


def field_type(name: str) -> FieldType | None:
    """The declared type of a field, ``keyword`` under a dynamic namespace, else ``None``."""
    kind = FIELDS.get(name)
    if kind is not None:
        return kind
    if name.startswith(DYNAMIC_NAMESPACES):
        return "keyword"
    return None


def flattened_root(name: str) -> str | None:
    """The ``object`` field holding ``name`` (itself, or a key inside it: ``dns.answers`` for
    ``dns.answers.data``), when Elasticsearch maps that object as ``flattened``: its leaves are
    keywords searched by dotted key, whatever their JSON type. Dynamic namespaces are not."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        root = ".".join(parts[:end])
        if FIELDS.get(root) == "object":
            return None if f"{root}." in DYNAMIC_NAMESPACES else root
    return None
