"""pySigma processing pipelines that map Sigma rules onto the events ztsoc stores.

Reused from the ecosystem, not rewritten: Sysmon's generic-category -> EventID mapping
(``pySigma-pipeline-sysmon``), the Windows log-source -> channel table and the PowerShell
categories (``pySigma-pipeline-windows`` / ``sigma.pipelines.common``), and the Zeek -> ECS
field table of the Elasticsearch backend (``ecs_zeek_beats``). What is ours is only what
no published pipeline knows: which ``event.dataset`` holds a log source in our store
(``system.auth`` for Linux auth logs, ``network.flow`` / ``network.dns`` for our capture
collector, ``policy.decision`` for the decision point), and that our EVTX reader keeps
every EventData field verbatim under ``winlog.event_data.*`` with the header fields in
their ECS places (``event.code``, ``winlog.channel``, ``winlog.provider_name``,
``winlog.computer_name``), which is what Winlogbeat's *raw* shape looks like.

Rules written for ztsoc itself use ``logsource: {product: ztsoc, service: <name>}`` and ECS
field names directly; ``ZTSOC_SERVICES`` says which dataset each service reads.

Every rule, whatever its log source, ends up constrained to one ``event.dataset`` or a
Windows channel / event code, so the embedded matcher can index it and Elasticsearch
never scans the whole store for it. Log sources we do not collect are pinned to a dataset
named after them (``aws.cloudtrail``), which matches nothing until such events are imported.

The pipelines are published to pySigma as plugins by ``sigma/pipelines/ztsoc`` (pySigma
discovers plugins by that namespace package), so ``sigma convert -t lucene -p ztsoc RULES``
and ``sigma check`` use exactly these mappings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.pipelines.elasticsearch.zeek import ecs_zeek_beats
from sigma.pipelines.sysmon.sysmon import sysmon_generic_logsource_eventid_mapping
from sigma.pipelines.windows import windows_logsource_pipeline
from sigma.processing.conditions import (
    FieldNameProcessingItemAppliedCondition,
    IncludeFieldCondition,
    LogsourceCondition,
    RuleProcessingCondition,
    RuleProcessingItemAppliedCondition,
)
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    AddFieldnamePrefixTransformation,
    ChangeLogsourceTransformation,
    FieldMappingTransformation,
)
from sigma.rule import SigmaRule

#: ``logsource: {product: ztsoc, service: X}`` -> the dataset those rules read.
ZTSOC_SERVICES: dict[str, str] = {
    "auth": "system.auth",
    "flow": "network.flow",
    "dns": "network.dns",
    "http": "network.http",
    "tls": "network.tls",
    "policy": "policy.decision",
    "windows": "windows.security",
}

#: ``logsource: {product: ztsoc, category: X}`` (no service) -> an ECS categorisation condition.
ZTSOC_CATEGORIES: dict[str, dict[str, str]] = {
    "authentication": {"event.category": "authentication"},
    "network": {"event.category": "network"},
}

#: Linux services whose logs our syslog/journald readers store as ``system.auth``.
LINUX_AUTH_SERVICES: tuple[str, ...] = ("auth", "sshd", "sudo", "su", "pam", "login", "passwd", "useradd")

#: Sigma's Linux auth taxonomy (the few fields SigmaHQ's auth rules name) -> ECS.
LINUX_FIELDS: dict[str, str] = {
    "User": "user.name",
    "USER": "user.effective.name",
    "COMMAND": "process.command_line",
    "CommandLine": "process.command_line",
    "Image": "process.executable",
    "ParentImage": "process.parent.executable",
    "pam_user": "user.name",
    "pam_rhost": "source.ip",
    "SourceIp": "source.ip",
}

#: Zeek services -> our datasets (the capture collector's equivalents of Zeek's logs).
ZEEK_SERVICES: dict[str, str] = {
    "conn": "network.flow",
    "dns": "network.dns",
    "http": "network.http",
    "ssl": "network.tls",
}

#: The Windows event header: Sigma field -> the ECS place our EVTX reader puts it.
WINDOWS_HEADER: dict[str, str] = {
    "EventID": "event.code",
    "Channel": "winlog.channel",
    "Provider_Name": "winlog.provider_name",
    "Computer": "winlog.computer_name",
    "ComputerName": "winlog.computer_name",
}

#: Sigma categories of network rules written without a product (firewall logs, DNS servers).
GENERIC_NETWORK: dict[str, tuple[str, dict[str, str]]] = {
    "firewall": ("network.flow", {
        "src_ip": "source.ip", "dst_ip": "destination.ip", "src_port": "source.port",
        "dst_port": "destination.port", "action": "event.action",
    }),
    "dns": ("network.dns", {
        "query": "dns.question.name", "answer": "dns.answers.data", "record_type": "dns.question.type",
        "src_ip": "source.ip", "dst_ip": "destination.ip",
    }),
}

_DATASET = "event.dataset"


def _mapping(fields: dict[str, str]) -> dict[str | None, str | list[str]]:
    return {k: v for k, v in fields.items()}


def _dataset_item(identifier: str, dataset: str | list[str], **logsource: str) -> ProcessingItem:
    return ProcessingItem(
        identifier=identifier,
        transformation=AddConditionTransformation({_DATASET: dataset}),
        rule_conditions=[LogsourceCondition(**logsource)],  # type: ignore[arg-type]
    )


def ztsoc_own() -> ProcessingPipeline:
    """Rules written for ztsoc: ``product: ztsoc``, ECS field names, one dataset per service."""
    items = [
        _dataset_item(f"ztsoc_service_{service}", dataset, product="ztsoc", service=service)
        for service, dataset in ZTSOC_SERVICES.items()
    ] + [
        ProcessingItem(
            identifier=f"ztsoc_category_{category}",
            transformation=AddConditionTransformation(dict(conditions)),
            rule_conditions=[LogsourceCondition(product="ztsoc", category=category)],
        )
        for category, conditions in ZTSOC_CATEGORIES.items()
    ]
    return ProcessingPipeline(name="ztsoc: the province's own rules (ECS fields, product ztsoc)", priority=20,
                              items=items)


def ztsoc_linux() -> ProcessingPipeline:
    """Linux auth logs (sshd, PAM, sudo, su) as stored by our syslog/journald readers."""
    items = [
        _dataset_item(f"ztsoc_linux_{service}", "system.auth", product="linux", service=service)
        for service in LINUX_AUTH_SERVICES
    ] + [
        ProcessingItem(
            identifier="ztsoc_linux_fields",
            transformation=FieldMappingTransformation(_mapping(LINUX_FIELDS)),
            rule_conditions=[LogsourceCondition(product="linux")],
        ),
    ]
    return ProcessingPipeline(name="ztsoc: Linux auth logs (system.auth)", priority=20, items=items)


def ztsoc_network() -> ProcessingPipeline:
    """Zeek-style and generic network rules over our flow / DNS events (ECS from ecs_zeek_beats)."""
    zeek = ecs_zeek_beats()
    zeek._clear_pipeline()  # detach its items so ours can be added beside them
    items = [item for item in zeek.items if item.identifier != "zeek_ecs_event_dataset"] + [
        _dataset_item(f"ztsoc_zeek_{service}", dataset, product="zeek", service=service)
        for service, dataset in ZEEK_SERVICES.items()
    ]
    for category, (dataset, fields) in GENERIC_NETWORK.items():
        items += [
            ProcessingItem(
                identifier=f"ztsoc_generic_{category}_dataset",
                transformation=AddConditionTransformation({_DATASET: dataset}),
                rule_conditions=[LogsourceCondition(category=category)],
                rule_condition_negation=False,
            ),
            ProcessingItem(
                identifier=f"ztsoc_generic_{category}_fields",
                transformation=FieldMappingTransformation(_mapping(fields)),
                rule_conditions=[LogsourceCondition(category=category)],
            ),
        ]
    return ProcessingPipeline(name="ztsoc: network flows and DNS (Zeek/ECS)", priority=20, items=items)


def sysmon() -> ProcessingPipeline:
    """pySigma-pipeline-sysmon's pipeline (generic Windows log sources -> Sysmon event id and service),
    built from that package's own table exactly as its ``sysmon_pipeline`` builds it.

    Not by calling ``sysmon_pipeline()``: pySigma 1.5's ``@Pipeline`` decorator is one instance
    shared by every decorated pipeline (``Pipeline.__new__`` is a singleton, ``__init__`` replaces
    its function), so once another such module is imported (plugin autodiscovery imports
    ``sigma.pipelines.test``: ``sigma convert -p ztsoc``, ``sigma list pipelines``) that call runs
    the other module's function and the Sysmon mapping silently disappears from ours.
    """
    items: list[ProcessingItem] = []
    event_id: Any  # an int (or a list of them) in the package's untyped table
    for log_source, event_id in sysmon_generic_logsource_eventid_mapping.items():
        items += [
            ProcessingItem(
                identifier=f"sysmon_{log_source}_eventid",
                transformation=AddConditionTransformation({"EventID": event_id}),
                rule_conditions=[LogsourceCondition(category=log_source, product="windows")],
            ),
            ProcessingItem(
                identifier=f"sysmon_{log_source}_logsource",
                transformation=ChangeLogsourceTransformation(product="windows", service="sysmon", category=log_source),
                rule_conditions=[LogsourceCondition(category=log_source, product="windows")],
            ),
        ]
    return ProcessingPipeline(name="Generic Log Sources to Sysmon Transformation", priority=10, items=items)


def ztsoc_windows() -> ProcessingPipeline:
    """Windows event logs as our EVTX reader stores them: header in ECS, EventData under winlog.event_data."""
    header = ProcessingItem(
        identifier="ztsoc_windows_header",
        transformation=FieldMappingTransformation(_mapping(WINDOWS_HEADER)),
        rule_conditions=[LogsourceCondition(product="windows")],
    )
    event_data = ProcessingItem(
        identifier="ztsoc_windows_event_data",
        transformation=AddFieldnamePrefixTransformation("winlog.event_data."),
        field_name_conditions=[
            FieldNameProcessingItemAppliedCondition("ztsoc_windows_header"),
            IncludeFieldCondition(fields=["\\w+\\."], mode="re"),  # already an ECS name
            IncludeFieldCondition(fields=["@timestamp"]),
        ],
        field_name_condition_negation=True,
        field_name_condition_linking=any,
        rule_conditions=[LogsourceCondition(product="windows")],
    )
    mapping = ProcessingPipeline(items=[header, event_data])
    # windows_logsource_pipeline adds the Channel condition of each service (sigma.pipelines.common).
    pipeline = sysmon() + windows_logsource_pipeline() + mapping
    pipeline.name = "ztsoc: Windows event logs (EVTX: ECS header, winlog.event_data.*)"
    pipeline.priority = 20
    return pipeline


@dataclass
class PinToOwnDataset(AddConditionTransformation):
    """``event.dataset: <product>.<service or category>`` for a log source nobody mapped."""

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        if isinstance(rule, SigmaRule):
            ls = rule.logsource
            parts = [p for p in (ls.product, ls.service or ls.category) if p]
            self.conditions = {_DATASET: ".".join(parts) or "unknown"}
        super().apply(rule)


def ztsoc_fallback() -> ProcessingPipeline:
    """Pin every rule no other item constrained to a dataset named after its log source.

    Runs last: a rule whose log source we do not collect (``product: aws``) then matches
    only events imported under ``event.dataset: aws.cloudtrail``, never everything.
    """
    applied: list[RuleProcessingCondition] = [
        RuleProcessingItemAppliedCondition(identifier)
        for identifier in _constraining_identifiers()
    ]
    return ProcessingPipeline(
        name="ztsoc: unknown log sources pinned to their own dataset",
        priority=90,
        items=[
            ProcessingItem(
                identifier="ztsoc_fallback_dataset",
                transformation=PinToOwnDataset(),
                rule_conditions=applied,
                rule_condition_linking=any,
                rule_condition_negation=True,
            ),
        ],
    )


def _constraining_identifiers() -> list[str]:
    ids = [f"ztsoc_service_{s}" for s in ZTSOC_SERVICES]
    ids += [f"ztsoc_category_{c}" for c in ZTSOC_CATEGORIES]
    ids += [f"ztsoc_linux_{s}" for s in LINUX_AUTH_SERVICES]
    ids += [f"ztsoc_zeek_{s}" for s in ZEEK_SERVICES]
    ids += [f"ztsoc_generic_{c}_dataset" for c in GENERIC_NETWORK]
    ids += ["ztsoc_windows_header"]
    return ids


def ztsoc() -> ProcessingPipeline:
    """Everything: what ``soc`` uses by default and what ``sigma convert -p ztsoc`` applies."""
    pipeline = ztsoc_own() + ztsoc_linux() + ztsoc_network() + ztsoc_windows() + ztsoc_fallback()
    pipeline.name = "ztsoc: all log sources"
    pipeline.priority = 20
    return pipeline


#: Registry: pipeline name -> factory (also what the pySigma plugin publishes).
PIPELINES: dict[str, Callable[[], ProcessingPipeline]] = {
    "ztsoc": ztsoc,
    "ztsoc_own": ztsoc_own,
    "ztsoc_linux": ztsoc_linux,
    "ztsoc_network": ztsoc_network,
    "ztsoc_windows": ztsoc_windows,
}


def get_pipeline(name: str = "ztsoc") -> ProcessingPipeline:
    """A fresh pipeline (pySigma pipelines keep per-rule state, so never share one between rules)."""
    try:
        factory = PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise ValueError(f"unknown pipeline {name!r}: expected one of {known}") from None
    return remember_log_source_answers(factory())


def remember_log_source_answers(pipeline: ProcessingPipeline) -> ProcessingPipeline:
    """Each item whose rule conditions are log-source conditions only answers them once per log source.

    Applying a pipeline asks every item (140 in ``ztsoc``) whether its rule conditions hold for the
    rule; for log-source conditions the answer depends on nothing but the rule's log source
    (category, product, service: ``SigmaLogSource.__contains__``), and a large set has few of them
    (SigmaHQ's Windows folder: ~2,400 rules, a few dozen log sources). Asking anew for every rule
    was half of applying the pipeline to that folder. The item's own answer is kept per log source
    as it stands when the item is reached, so a transformation that changes a rule's log source
    (Sysmon's) only means another key. Correlation rules (answered from the rules they reference)
    and items with other conditions are asked as before.
    """
    for item in pipeline.items:
        conditions = item.rule_conditions
        if (item.rule_condition_expression is None and isinstance(conditions, list) and conditions
                and all(type(c) is LogsourceCondition for c in conditions)):
            item.match_rule_conditions = _answers_kept(item.match_rule_conditions)  # type: ignore[method-assign]
    return pipeline


def _answers_kept(match: Callable[[SigmaRule | SigmaCorrelationRule], bool]) -> Callable[..., bool]:
    answers: dict[tuple[type, str | None, str | None, str | None], bool] = {}

    def kept(rule: SigmaRule | SigmaCorrelationRule) -> bool:
        if type(rule) is not SigmaRule:
            return match(rule)
        ls = rule.logsource
        key = (type(ls), ls.category, ls.product, ls.service)
        answer = answers.get(key)
        if answer is None:
            answer = answers[key] = match(rule)
        return answer

    return kept
