"""The alert: an ECS document (``event.kind: alert``) and the book that keeps reruns idempotent.

Shared by every detector (Sigma rules here, the anomaly models in ``detections.ml``): a
detector calls :meth:`AlertBook.record` with the rule, the group (the values that make two
findings the same case: a source IP, a user...), the time span and the evidence; the book
decides whether this continues an open case of the same rule and group (closer than the
rule's suppression window: the same alert, updated) or starts a new one.

An alert's ``event.id`` is derived from the rule, the group key and the first-seen time of
its case, so evaluating the same events again (a rerun, a restart, the look-back window)
gives the same id, and ``Store.put_alerts`` updates the alert instead of adding another;
the analyst's lifecycle fields survive because the store keeps them. The open cases are
kept in the store as state (``alert_case`` / rule key), so a restarted runner continues a
case that straddles its restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventstore.store import Doc, Store
from eventstore.timeutil import to_iso

STATE_KIND = "alert_case"
MAX_EVIDENCE = 1000
DEFAULT_SUPPRESS = 3600.0

#: ATT&CK tactics (Sigma tag form) -> (id, name). Fixed by MITRE; techniques come from the tags.
TACTICS: dict[str, tuple[str, str]] = {
    "reconnaissance": ("TA0043", "Reconnaissance"),
    "resource-development": ("TA0042", "Resource Development"),
    "initial-access": ("TA0001", "Initial Access"),
    "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"),
    "privilege-escalation": ("TA0004", "Privilege Escalation"),
    "defense-evasion": ("TA0005", "Defense Evasion"),
    "credential-access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"),
    "lateral-movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"),
    "command-and-control": ("TA0011", "Command and Control"),
    "exfiltration": ("TA0010", "Exfiltration"),
    "impact": ("TA0040", "Impact"),
}

#: field -> entity type, in the order an entity is looked for when a rule does not name one.
ENTITY_FIELDS: dict[str, str] = {
    "user.name": "user",
    "user.target.name": "user",
    "winlog.event_data.TargetUserName": "user",
    "source.ip": "ip",
    "winlog.event_data.IpAddress": "ip",
    "client.ip": "ip",
    "host.name": "host",
    "winlog.computer_name": "host",
    "host.hostname": "host",
    "service.name": "service",
    "destination.ip": "ip",
}

#: event fields copied onto a single-event alert so analysts (and exception queries) can filter on them.
CONTEXT_FIELDS: tuple[str, ...] = (
    "host.name", "user.name", "source.ip", "destination.ip", "destination.port", "service.name",
    "winlog.computer_name", "process.command_line", "dns.question.name", "url.path",
)


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What an alert says about the rule that raised it."""

    key: str
    title: str
    level: str = "medium"
    tags: tuple[str, ...] = ()
    uuid: str | None = None
    description: str | None = None
    author: str | None = None
    references: tuple[str, ...] = ()
    ruleset: str = "sigma"
    guide: str | None = None
    response: str | None = None
    suppress: float = DEFAULT_SUPPRESS
    entity_fields: tuple[str, ...] = ()
    category: str | None = None


def threat_fields(tags: Iterable[str]) -> Doc:
    """``threat.*`` from Sigma's ATT&CK tags (``attack.t1110.001``, ``attack.credential-access``)."""
    techniques: list[str] = []
    subs: list[str] = []
    tactic_ids: list[str] = []
    tactic_names: list[str] = []
    for tag in tags:
        ns, _, name = tag.lower().partition(".")
        if ns != "attack":
            continue
        if name.startswith("t") and name[1:2].isdigit():
            tech = name.upper()
            if "." in tech:
                subs.append(tech)
                tech = tech.split(".")[0]
            if tech not in techniques:
                techniques.append(tech)
        elif name in TACTICS:
            tid, tname = TACTICS[name]
            tactic_ids.append(tid)
            tactic_names.append(tname)
    if not (techniques or tactic_ids):
        return {}
    doc: Doc = {"threat.framework": "MITRE ATT&CK"}
    if techniques:
        doc["threat.technique.id"] = techniques
    if subs:
        doc["threat.technique.subtechnique.id"] = subs
    if tactic_ids:
        doc["threat.tactic.id"] = tactic_ids
        doc["threat.tactic.name"] = tactic_names
    return doc


def alert_id(rule_key: str, group_key: str, first_seen: float) -> str:
    """Deterministic: the same case of the same rule always gets the same id."""
    raw = f"{rule_key}\x1f{group_key}\x1f{to_iso(_dt(first_seen))}"
    return "alert-" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def group_key(group: Mapping[str, Any]) -> str:
    return "|".join(f"{k}={group[k]}" for k in sorted(group))


def pick_entity(rule: RuleInfo, group: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[str, str] | None:
    """(type, value) of the entity an alert is about: the rule's choice, else the first known field."""
    for name in rule.entity_fields:
        value = group.get(name, context.get(name))
        if value not in (None, "", []):
            return _entity_type(name, value), _scalar(value)
    for source in (group, context):
        for name in ENTITY_FIELDS:
            value = source.get(name)
            if value not in (None, "", [], "-"):
                return _entity_type(name, value), _scalar(value)
    return None


def _entity_type(name: str, value: Any) -> str:
    text = _scalar(value)
    if text.startswith("spiffe://"):
        return "service"
    return ENTITY_FIELDS.get(name) or ("ip" if name.endswith(".ip") else "user" if "user" in name else "host")


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(slots=True)
class Case:
    """An open case of one rule for one group: what becomes (and updates) one alert."""

    id: str
    rule: RuleInfo
    group: dict[str, str]
    first: float
    last: float
    evidence: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    existed: bool = False  # known before this run (an update, not a new alert)
    touched: bool = False

    def to_doc(self) -> Doc:
        rule = self.rule
        doc: Doc = {
            "@timestamp": to_iso(_dt(self.first)),
            "event.id": self.id,
            "event.kind": "alert",
            "event.module": "detections",
            "event.dataset": f"detections.{rule.ruleset}",
            "event.severity": LEVEL_SEVERITY.get(rule.level, 47),
            "event.start": to_iso(_dt(self.first)),
            "event.end": to_iso(_dt(self.last)),
            "message": _message(rule, self.group, self.value, len(self.evidence)),
            "rule.id": rule.key,
            "rule.name": rule.title,
            "rule.ruleset": rule.ruleset,
            "ztsoc.alert.level": rule.level,
            "ztsoc.alert.group_key": group_key(self.group),
            "ztsoc.alert.first_seen": to_iso(_dt(self.first)),
            "ztsoc.alert.last_seen": to_iso(_dt(self.last)),
            "ztsoc.alert.evidence": self.evidence[:MAX_EVIDENCE],
            "ztsoc.alert.evidence_count": len(self.evidence),
            "tags": list(rule.tags),
        }
        if rule.uuid:
            doc["rule.uuid"] = rule.uuid
        if rule.description:
            doc["rule.description"] = rule.description
        if rule.author:
            doc["rule.author"] = rule.author
        if rule.references:
            doc["rule.reference"] = list(rule.references)
        if rule.category:
            doc["rule.category"] = rule.category
        if rule.guide:
            doc["ztsoc.alert.guide"] = rule.guide
        if rule.response:
            doc["ztsoc.alert.response"] = rule.response
        if self.value is not None:
            doc["ztsoc.alert.score"] = float(self.value)
        doc.update(threat_fields(rule.tags))
        for name, value in {**self.context, **self.group}.items():
            doc.setdefault(name, value)
        entity = pick_entity(rule, self.group, self.context)
        if entity:
            doc["ztsoc.alert.entity.type"], doc["ztsoc.alert.entity.value"] = entity
        return doc


LEVEL_SEVERITY: dict[str, int] = {"informational": 21, "low": 21, "medium": 47, "high": 73, "critical": 99}


def _message(rule: RuleInfo, group: Mapping[str, Any], value: float | None, n: int) -> str:
    who = ", ".join(f"{k}={v}" for k, v in group.items())
    figure = f" ({value:g})" if value is not None else ""
    return f"{rule.title}{figure}" + (f" for {who}" if who else "") + f"; {n} event(s)"


class AlertBook:
    """Open cases per rule, loaded from and saved to the store's state (or kept in memory)."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self._cases: dict[str, dict[str, Case]] = {}  # rule key -> group key -> case
        self._loaded: set[str] = set()
        self._touched: dict[str, Case] = {}
        self._preloaded: dict[str, Doc] = {}

    def preload(self, rule_keys: Sequence[str]) -> None:
        """Read the open cases of many rules in one round trip (a run over thousands of rules)."""
        if self.store is not None:
            todo = [k for k in rule_keys if k not in self._loaded]
            self._preloaded.update(self.store.get_states(STATE_KIND, todo))
            self._preloaded.update({k: {} for k in todo if k not in self._preloaded})

    def _load(self, rule: RuleInfo) -> dict[str, Case]:
        cases = self._cases.setdefault(rule.key, {})
        if rule.key in self._loaded:
            return cases
        self._loaded.add(rule.key)
        if self.store is not None:
            doc = self._preloaded.pop(rule.key, None)
            if doc is None:
                doc = self.store.get_state(STATE_KIND, rule.key) or {}
            for gk, c in (doc.get("cases") or {}).items():
                cases[gk] = Case(str(c["id"]), rule, dict(c.get("group") or {}), float(c["first"]), float(c["last"]),
                                 existed=True)
        return cases

    def record(self, rule: RuleInfo, group: Mapping[str, str], first: float, last: float,
               evidence: Sequence[str], context: Mapping[str, Any] | None = None,
               value: float | None = None) -> Case:
        """A finding; returns the case (new or continued) it belongs to."""
        cases = self._load(rule)
        gk = group_key(group)
        case = cases.get(gk)
        if case is None or first > case.last + rule.suppress:
            case = Case(alert_id(rule.key, gk, first), rule, dict(group), first, last)
            cases[gk] = case
        case.first = min(case.first, first)
        case.last = max(case.last, last)
        known = set(case.evidence)
        case.evidence.extend(e for e in evidence if e not in known)
        if context:
            for name, v in context.items():
                case.context.setdefault(name, v)
        if value is not None:
            case.value = max(value, case.value or value)
        case.touched = True
        self._touched.setdefault(case.id, case)
        return case

    def forget(self, rule_keys: set[str]) -> None:
        """Drop this run's findings of these rules: they failed, their cursors stay, the next run redoes them."""
        for key in rule_keys:
            self._cases.pop(key, None)
            self._loaded.discard(key)
        self._touched = {k: c for k, c in self._touched.items() if c.rule.key not in rule_keys}

    def touched(self) -> list[Case]:
        return list(self._touched.values())

    def docs(self) -> list[Doc]:
        """The alerts this run raised or updated, merged with what the store already holds."""
        out: list[Doc] = []
        cases = self.touched()
        stored = self.store.get_alerts([c.id for c in cases]) if self.store is not None and cases else {}
        for case in cases:
            doc = case.to_doc()
            if self.store is not None:
                # also for a case recomputed after its state was pruned: same id, so same alert
                old = stored.get(case.id)
                if old is not None:
                    doc = merge_alert(old, doc)
                    case.existed = True
            out.append(doc)
        return out

    def save(self, horizon: float | None = None) -> None:
        """Persist the open cases; cases last seen before ``horizon`` are closed for good."""
        if self.store is None:
            return
        values: dict[str, Doc] = {}
        for rule_key, cases in self._cases.items():
            if not any(c.touched for c in cases.values()) and horizon is None:
                continue
            keep = {gk: c for gk, c in cases.items()
                    if horizon is None or c.last + c.rule.suppress >= horizon}
            values[rule_key] = {"cases": {
                gk: {"id": c.id, "group": c.group, "first": c.first, "last": c.last} for gk, c in keep.items()
            }}
        if values:
            self.store.put_states(STATE_KIND, values)


def merge_alert(old: Mapping[str, Any], new: Doc) -> Doc:
    """A rerun's alert on top of the stored one: evidence united, first/last seen widened."""
    merged = dict(new)
    old_ev = old.get("ztsoc.alert.evidence") or []
    evidence = list(dict.fromkeys([*old_ev, *new.get("ztsoc.alert.evidence", [])]))
    merged["ztsoc.alert.evidence"] = evidence[:MAX_EVIDENCE]
    merged["ztsoc.alert.evidence_count"] = max(len(evidence), int(old.get("ztsoc.alert.evidence_count") or 0))
    for name, pick in (("ztsoc.alert.first_seen", min), ("ztsoc.alert.last_seen", max)):
        values = [v for v in (old.get(name), new.get(name)) if v]
        if values:
            merged[name] = pick(values)
    merged["@timestamp"] = merged.get("ztsoc.alert.first_seen", merged["@timestamp"])
    merged["event.start"] = merged["ztsoc.alert.first_seen"]
    merged["event.end"] = merged["ztsoc.alert.last_seen"]
    return merged
