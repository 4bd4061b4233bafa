"""The investigation guide and response steps of the rule behind an alert.

``soc alerts show``, the triage pane and the dashboard print what the rule's author wrote
for the analyst: the rule's ``ztsoc:`` block (``guide``, ``response``), copied onto each
alert by the detection runner, or read from the rule file for alerts raised before that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Keys a rule file may use for its guide and its response steps (top level or under ``ztsoc:``).
GUIDE_KEYS: tuple[str, ...] = ("investigation", "investigation_guide", "guide", "triage")
RESPONSE_KEYS: tuple[str, ...] = ("response", "response_steps", "respond", "remediation")


@dataclass(frozen=True, slots=True)
class Guide:
    investigation: str | None = None
    response: list[str] = field(default_factory=list)
    falsepositives: list[str] = field(default_factory=list)
    source: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"investigation": self.investigation, "response": self.response,
                "falsepositives": self.falsepositives, "source": self.source}


def _rule_files(extra_dirs: Sequence[str] = ()) -> list[Any]:
    from pathlib import Path

    dirs = [Path(__file__).with_name("rules"), *(Path(d) for d in extra_dirs)]
    return [p for d in dirs if d.is_dir() for p in sorted(d.rglob("*.y*ml"))]


def _as_steps(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        lines = [ln.strip().lstrip("-*0123456789. ").strip() for ln in value.strip().splitlines()]
        return [ln for ln in lines if ln]
    return [str(v) for v in value]


#: path -> (mtime, guides by rule key) so ``show`` and the triage pane parse each rule file once.
_GUIDE_CACHE: dict[str, tuple[float, dict[str, Guide]]] = {}


def _guides_in(path: Any) -> dict[str, Guide]:
    import yaml

    from eventstore.yamlfile import documents

    try:
        mtime = path.stat().st_mtime
        cached = _GUIDE_CACHE.get(str(path))
        if cached is not None and cached[0] == mtime:
            return cached[1]
        docs = documents(path.read_text(encoding="utf-8"))  # a refused document (a key twice) is skipped
    except (OSError, yaml.YAMLError):
        return {}
    found: dict[str, Guide] = {}
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        custom: dict[str, Any] = doc["ztsoc"] if isinstance(doc.get("ztsoc"), dict) else {}
        merged = {**doc, **custom}
        text = next((merged[k] for k in GUIDE_KEYS if merged.get(k)), None)
        steps = next((merged[k] for k in RESPONSE_KEYS if merged.get(k)), None)
        if isinstance(text, dict):  # {"summary": ..., "steps": [...]} style
            steps = steps or text.get("steps") or text.get("response")
            text = text.get("summary") or text.get("text")
        guide = Guide(investigation=str(text).strip() if text else None, response=_as_steps(steps),
                      falsepositives=_as_steps(doc.get("falsepositives")), source=str(path))
        for key in (doc.get("name"), doc.get("id")):
            if key:
                found[str(key)] = guide
    found.setdefault(path.stem, next(iter(found.values()), Guide(source=str(path))))
    _GUIDE_CACHE[str(path)] = (mtime, found)
    return found


#: placeholder -> the alert fields that fill it, first present wins
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "ip": ("source.ip", "client.ip"), "src": ("source.ip",), "dst": ("destination.ip",),
    "user": ("user.name", "user.target.name"), "host": ("host.name", "winlog.computer_name"),
    "domain": ("dns.question.registered_domain", "dns.question.name"), "service": ("service.name",),
    "principal": ("user.name",), "alert": ("event.id",),
}
#: values put into a guide as they are: anything else (quotes, spaces, ;, $...) could break out
#: of the query or shell command around the placeholder when an analyst copies it
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._@:/+-]{1,256}")
_PLACEHOLDER = re.compile(r"<(" + "|".join(PLACEHOLDERS) + r")>")


def _value_for(name: str, alert: Mapping[str, Any]) -> str | None:
    if alert.get("ztsoc.alert.entity.type") == name:
        entity = alert.get("ztsoc.alert.entity.value")
        if entity:
            return str(entity)
    for fname in PLACEHOLDERS[name]:
        value = alert.get(fname)
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else None
        if value not in (None, ""):
            return str(value)
    return None


def fill(text: str | None, alert: Mapping[str, Any]) -> str | None:
    """``<ip>``, ``<user>``, ``<host>``... in a guide replaced by the alert's values.

    Only values made of safe characters are put in (addresses, host and account names); a
    value that could break out of the quoted query or command around it (an attacker chooses
    user names) leaves its placeholder, and the analyst reads the value from the alert.
    """
    if not text:
        return text

    def one(m: re.Match[str]) -> str:
        value = _value_for(m.group(1), alert)
        return value if value is not None and _SAFE_VALUE.fullmatch(value) else m.group(0)

    return _PLACEHOLDER.sub(one, text)


def rule_guide(alert: Mapping[str, Any], rule_dirs: Sequence[str] = ()) -> Guide:
    """The rule's guide for ``alert`` with its placeholders filled from the alert (:func:`fill`)."""
    g = _rule_guide(alert, rule_dirs)
    return Guide(investigation=fill(g.investigation, alert), response=[fill(s, alert) or "" for s in g.response],
                 falsepositives=g.falsepositives, source=g.source)


def _rule_guide(alert: Mapping[str, Any], rule_dirs: Sequence[str] = ()) -> Guide:
    """The investigation guide and response steps of the rule that raised ``alert``.

    The detection runner copies them onto the alert (``ztsoc.alert.guide`` / ``.response``,
    from the rule's ``ztsoc:`` block), which is what an analyst should read: the guide as it
    was when the alert fired. Older alerts fall back to the rule file (by name, id or file name).
    """
    guide, response = alert.get("ztsoc.alert.guide"), alert.get("ztsoc.alert.response")
    if guide or response:
        return Guide(investigation=str(guide).strip() if guide else None, response=_as_steps(response),
                     source="alert")
    for key in (alert.get("rule.id"), alert.get("rule.uuid")):
        if not key:
            continue
        for path in _rule_files(rule_dirs):
            hit = _guides_in(path).get(str(key))
            if hit is not None:
                return hit
    desc = alert.get("rule.description")
    return Guide(investigation=str(desc) if desc else None)
