"""Exercises: YAML files validated by a published JSON Schema (``exercise_schema.json``).

A schema error names the file, the line and the field, so an instructor writing a new
exercise sees at once what to fix; every shipped exercise is loaded by a test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from playbooks.answers import ANSWER_KINDS, REQUIRED_KEYS

SHIPPED = Path(__file__).parent / "exercises"
SCHEMA: dict[str, Any] = json.loads((resources.files("playbooks") / "exercise_schema.json").read_text())


class ExerciseError(ValueError):
    """An exercise file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True, slots=True)
class Solution:
    query: str
    field: str
    reduce: str
    index: str = "events"
    divide_by: float | None = None


@dataclass(frozen=True, slots=True)
class Question:
    number: int
    text: str
    points: int
    answer: dict[str, Any]
    solution: Solution
    wrong_example: Any = None


@dataclass(frozen=True, slots=True)
class Hint:
    number: int
    text: str
    cost: int


@dataclass(frozen=True, slots=True)
class Exercise:
    id: str
    title: str
    story: str
    techniques: tuple[str, ...]
    difficulty: str
    generator: str
    params: dict[str, Any]
    seed: int
    background: dict[str, int]
    questions: tuple[Question, ...]
    hints: tuple[Hint, ...]
    debrief: str
    path: Path | None = field(default=None, compare=False)

    @property
    def max_points(self) -> int:
        return sum(q.points for q in self.questions)


def _line_of(node: yaml.Node, path: list[str | int]) -> int:
    """1-based line of the YAML node at ``path`` (the deepest one that exists)."""
    for step in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            match = node.value[step]
        else:
            match = None
        if match is None:
            break
        node = match
    return node.start_mark.line + 1


def load_exercise(path: Path) -> Exercise:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExerciseError(f"{path}: not valid YAML: {exc}") from exc
    if root is None or not isinstance(data, dict):
        raise ExerciseError(f"{path}:1: an exercise is a mapping (id, title, story, ...)")
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            where = ".".join(str(p) for p in err.absolute_path) or "(top)"
            lines.append(f"{path}:{_line_of(root, list(err.absolute_path))}: {where}: {err.message}")
        raise ExerciseError("\n".join(lines))
    from playbooks.incidents import INCIDENT_GENERATORS

    if data["incident"]["generator"] not in INCIDENT_GENERATORS:
        raise ExerciseError(f"{path}:{_line_of(root, ['incident', 'generator'])}: incident.generator: unknown "
                            f"{data['incident']['generator']!r}; known: {', '.join(sorted(INCIDENT_GENERATORS))}")
    questions = []
    for i, q in enumerate(data["questions"]):
        kind = q["answer"]["kind"]
        missing = [k for k in REQUIRED_KEYS[kind] if k not in q["answer"]]
        if missing or kind not in ANSWER_KINDS:
            raise ExerciseError(f"{path}:{_line_of(root, ['questions', i, 'answer'])}: questions.{i}.answer: "
                                f"kind {kind} needs {', '.join(missing)}")
        questions.append(Question(i + 1, q["text"], q["points"], dict(q["answer"]), Solution(**q["solution"]),
                                  q.get("wrong_example")))
    return Exercise(
        id=data["id"], title=data["title"], story=data["story"].strip(), techniques=tuple(data["techniques"]),
        difficulty=data["difficulty"], generator=data["incident"]["generator"],
        params=dict(data["incident"].get("params") or {}), seed=int(data["incident"].get("seed", 1)),
        background=dict(data.get("background") or {}), questions=tuple(questions),
        hints=tuple(Hint(i + 1, h["text"], h["cost"]) for i, h in enumerate(data.get("hints") or [])),
        debrief=data["debrief"].strip(), path=path,
    )


def load_exercises(folders: list[Path] | None = None) -> dict[str, Exercise]:
    """Every exercise in the shipped folder and ``folders``; the first with an id wins."""
    found: dict[str, Exercise] = {}
    for folder in [SHIPPED, *(folders or [])]:
        for path in sorted(folder.glob("*.y*ml")):
            ex = load_exercise(path)
            found.setdefault(ex.id, ex)
    return found
