"""Response playbooks in the shape of OASIS CACAO v2, linked to alerts by ATT&CK technique.

We use CACAO's workflow model (start, action, if-condition, parallel, end; variables;
agents as targets) so the province's steps can move to a CACAO-capable SOAR later, but
execute them as an analyst's checklist: ``soc respond ALERT`` walks the workflow, asks
at each step, and records every completed step in the alert's history. No CACAO library
is maintained on PyPI, so loading and walking are written here, against
``response_schema.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from eventstore import yamlfile
from locales import current_language

SHIPPED = Path(__file__).parent / "response"
SCHEMA: dict[str, Any] = json.loads((resources.files("playbooks") / "response_schema.json").read_text())


@dataclass(frozen=True, slots=True)
class ResponsePlaybook:
    id: str
    name: str
    description: str
    techniques: tuple[str, ...]
    variables: dict[str, Any]
    agents: dict[str, Any]
    start: str
    workflow: dict[str, dict[str, Any]]
    path: Path | None = None

    def relevance(self, techniques: set[str]) -> tuple[int, int]:
        """(exact technique matches, parent/sub-technique matches): T1110.001 and T1110 are related."""
        mine = set(self.techniques)
        exact = len(techniques & mine)
        related = sum(1 for t in techniques - mine
                      if t.split(".")[0] in mine or any(m.split(".")[0] == t for m in mine))
        return exact, related

    def matches(self, techniques: set[str]) -> bool:
        return any(self.relevance(techniques))


def load_response(path: Path) -> ResponsePlaybook:
    data = yamlfile.load(path.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise ValueError("\n".join(f"{path}: {'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                                   for e in errors[:10]))
    workflow = data["workflow"]
    for step_id, step in workflow.items():
        for key in ("on_completion", "on_true", "on_false"):
            if key in step and step[key] not in workflow:
                raise ValueError(f"{path}: workflow.{step_id}.{key}: no step {step[key]!r}")
        for target in step.get("next_steps", []):
            if target not in workflow:
                raise ValueError(f"{path}: workflow.{step_id}.next_steps: no step {target!r}")
    if data["workflow_start"] not in workflow:
        raise ValueError(f"{path}: workflow_start: no step {data['workflow_start']!r}")
    overlay = path.parent / current_language() / path.name
    if overlay.is_file():
        data = _translated(data, overlay)
    return ResponsePlaybook(data["id"], data["name"], data.get("description", ""), tuple(data["labels"]),
                            dict(data.get("playbook_variables") or {}), dict(data.get("agent_definitions") or {}),
                            data["workflow_start"], data["workflow"], path)


#: the texts a language overlay (``response/<lang>/<file>.yml``) may give a step
STEP_TEXTS: tuple[str, ...] = ("name", "description", "condition")


def _translated(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The playbook with the overlay's texts (name, description, agents' names, steps' name /
    description / condition); ids, variables, commands and the workflow stay the playbook's own."""
    over = yamlfile.load(path.read_text(encoding="utf-8"))
    if not isinstance(over, dict) or over.get("id") != data["id"]:
        raise ValueError(f"{path}: id: an overlay names the playbook it translates ({data['id']})")
    out = {**data, "workflow": {k: dict(v) for k, v in data["workflow"].items()},
           "agent_definitions": {k: dict(v) for k, v in (data.get("agent_definitions") or {}).items()}}
    out.update({k: str(over[k]) for k in ("name", "description") if over.get(k)})
    for agent, name in (over.get("agents") or {}).items():
        if agent not in out["agent_definitions"]:
            raise ValueError(f"{path}: agents.{agent}: no such agent in the playbook")
        out["agent_definitions"][agent]["name"] = str(name)
    for step_id, texts in (over.get("steps") or {}).items():
        if step_id not in out["workflow"]:
            raise ValueError(f"{path}: steps.{step_id}: no such step in the playbook")
        out["workflow"][step_id].update({k: str(v) for k, v in (texts or {}).items() if k in STEP_TEXTS})
    return out


def load_responses(folders: list[Path] | None = None) -> list[ResponsePlaybook]:
    return [load_response(p) for folder in [SHIPPED, *(folders or [])] for p in sorted(folder.glob("*.y*ml"))]


def alert_techniques(alert: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for key in ("threat.technique.id", "threat.technique.subtechnique.id"):
        value = alert.get(key)
        found.update(str(v) for v in (value if isinstance(value, list) else [value]) if v)
    return found


def playbooks_for(alert: Mapping[str, Any], folders: list[Path] | None = None) -> list[ResponsePlaybook]:
    """The playbooks covering the alert's techniques, the most specific first."""
    techniques = alert_techniques(alert)
    found = [pb for pb in load_responses(folders) if pb.matches(techniques)]
    return sorted(found, key=lambda pb: tuple(-n for n in pb.relevance(techniques)))


def fill(text: str, variables: Mapping[str, str]) -> str:
    for name, value in variables.items():
        text = text.replace(name, value)
    return text


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    kind: str  # action | if-condition
    name: str
    description: str
    commands: tuple[str, ...]
    agent: str | None
    condition: str | None = None


#: The analyst's answer for a step: for an action "done" or "skipped"; for a condition "yes" or "no".
Ask = Callable[[Step], str]


def walk(pb: ResponsePlaybook, ask: Ask, variables: Mapping[str, str]) -> Iterator[tuple[Step, str]]:
    """Visit the workflow from its start, branching on the analyst's answers; parallel branches in order."""
    seen: set[str] = set()

    def visit(step_id: str | None) -> Iterator[tuple[Step, str]]:
        while step_id is not None and step_id not in seen:
            seen.add(step_id)
            raw = pb.workflow[step_id]
            kind = raw["type"]
            if kind == "end":
                return
            if kind == "parallel":
                for branch in raw["next_steps"]:
                    yield from visit(branch)
                step_id = raw.get("on_completion")
                continue
            if kind == "start":
                step_id = raw.get("on_completion")
                continue
            agent = pb.agents.get(raw.get("agent", ""), {}).get("name") if raw.get("agent") else None
            step = Step(step_id, kind, fill(raw.get("name", step_id), variables),
                        fill(raw.get("description", ""), variables),
                        tuple(fill(c["command"], variables) for c in raw.get("commands", [])), agent,
                        fill(raw["condition"], variables) if kind == "if-condition" else None)
            answer = ask(step)
            yield step, answer
            if kind == "if-condition":
                step_id = raw["on_true"] if answer == "yes" else raw.get("on_false")
            else:
                step_id = raw.get("on_completion")

    yield from visit(pb.start)
