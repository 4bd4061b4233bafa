"""Exercises: YAML files validated by a published JSON Schema (``exercise_schema.json``).

A schema error names the file, the line and the field, so an instructor writing a new
exercise sees at once what to fix; every shipped exercise is loaded by a test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from eventstore import yamlfile
from locales import current_language
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
    #: the question it helps with (its cost comes off that question's points); None: general
    question: int | None = None


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
    #: parameters drawn from the seed (``playbooks.draws``); texts name them as ``${name}``
    draws: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def max_points(self) -> int:
        return sum(q.points for q in self.questions)

    def instance(self, seed: int | None = None) -> Exercise:
        """The exercise as played with this seed (default: its own): entities drawn, texts filled in."""
        from playbooks.draws import draw_params, render

        seed = self.seed if seed is None else seed
        params = draw_params(self.params, self.draws, seed)

        def r(value: Any) -> Any:
            return render(value, params)

        questions = tuple(replace(q, text=r(q.text), answer=r(q.answer), wrong_example=r(q.wrong_example),
                                  solution=replace(q.solution, query=r(q.solution.query))) for q in self.questions)
        return replace(self, params=params, seed=seed, story=r(self.story), debrief=r(self.debrief),
                       questions=questions, hints=tuple(replace(h, text=r(h.text)) for h in self.hints), draws={})

    def hints_for(self, question: int) -> list[Hint]:
        return [h for h in self.hints if h.question == question]


class _Lines:
    """The file's YAML node tree, composed on first use (only error messages need lines)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._node: yaml.Node | None = None

    @property
    def node(self) -> yaml.Node:
        if self._node is None:
            try:
                self._node = yaml.compose(self.text) or yaml.ScalarNode("tag:yaml.org,2002:null", "")
            except yaml.YAMLError:  # libyaml loaded what the pure-Python composer refuses ("_\t:"): no lines
                self._node = yaml.ScalarNode("tag:yaml.org,2002:null", "")
        return self._node


def _line_of(root: _Lines, path: list[str | int]) -> int:
    """1-based line of the YAML node at ``path`` (the deepest one that exists)."""
    node = root.node
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
    return node.start_mark.line + 1 if node.start_mark is not None else 1  # no tree (empty, or refused): line 1


#: what a language overlay (``exercises/<lang>/<id>.yml``) may replace: the texts a trainee reads
OVERLAY_TEXTS: tuple[str, ...] = ("title", "story", "debrief")


def overlay_path(path: Path, lang: str) -> Path:
    return path.parent / lang / path.name


def apply_overlay(ex: Exercise, path: Path) -> Exercise:
    """The exercise with the texts of its language overlay: title, story, questions, hints, debrief.

    Everything else (answers, solutions, the incident) stays the exercise's own, so answers are
    checked the same way in every language. A question or hint the overlay leaves out keeps
    its English text; an overlay with more of them than the exercise, or a text naming a
    ``${draw}`` the English one does not, is an error naming the overlay's file and line.
    """
    text = path.read_text(encoding="utf-8")
    try:
        data = yamlfile.load(text)
    except yaml.YAMLError as exc:
        raise ExerciseError(f"{path}: not valid YAML: {exc}") from exc
    root = _Lines(text)
    if not isinstance(data, dict) or data.get("id") != ex.id:
        raise ExerciseError(f"{path}:1: id: an overlay names the exercise it translates ({ex.id!r})")

    def texts(key: str, originals: tuple[Any, ...]) -> list[str | None]:
        items = data.get(key) or []
        if not isinstance(items, list) or len(items) > len(originals):
            where: list[str | int] = [key, len(originals)] if isinstance(items, list) else [key]
            raise ExerciseError(f"{path}:{_line_of(root, where)}: {key}: the exercise has {len(originals)}, "
                                f"a list of {{text: ...}}")
        out: list[str | None] = []
        for i, item in enumerate(items):
            value = item.get("text") if isinstance(item, dict) else None
            if value is not None and not isinstance(value, str):
                raise ExerciseError(f"{path}:{_line_of(root, [key, i])}: {key}.{i}.text: a string")
            out.append(value)
        return out + [None] * (len(originals) - len(out))

    changes: dict[str, Any] = {}
    for key in OVERLAY_TEXTS:
        if key in data:
            if not isinstance(data[key], str):
                raise ExerciseError(f"{path}:{_line_of(root, [key])}: {key}: a string")
            changes[key] = data[key].strip()
    changes["questions"] = tuple(replace(q, text=t) if t else q
                                 for q, t in zip(ex.questions, texts("questions", ex.questions), strict=True))
    changes["hints"] = tuple(replace(h, text=t) if t else h
                             for h, t in zip(ex.hints, texts("hints", ex.hints), strict=True))
    translated = replace(ex, **changes)
    for where, english, local in _text_pairs(ex, translated):
        if set(PLACEHOLDER.findall(local)) - set(PLACEHOLDER.findall(english)):
            raise ExerciseError(f"{path}:{_line_of(root, where)}: {'.'.join(map(str, where))}: names a "
                                f"${{...}} the English text does not")
    return translated


PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _text_pairs(a: Exercise, b: Exercise) -> list[tuple[list[str | int], str, str]]:
    """(where, text in ``a``, text in ``b``) for every text an overlay may translate."""
    pairs: list[tuple[list[str | int], str, str]] = [([k], getattr(a, k), getattr(b, k)) for k in OVERLAY_TEXTS]
    pairs += [(["questions", i], qa.text, qb.text) for i, (qa, qb) in enumerate(zip(a.questions, b.questions, strict=True))]
    pairs += [(["hints", i], ha.text, hb.text) for i, (ha, hb) in enumerate(zip(a.hints, b.hints, strict=True))]
    return pairs


def load_exercise(path: Path, lang: str | None = None) -> Exercise:
    """The exercise in ``path``, in ``lang`` (default: the interface language) when it has an overlay."""
    ex = _load_exercise(path)
    overlay = overlay_path(path, lang or current_language())
    return apply_overlay(ex, overlay) if overlay.is_file() else ex


def _load_exercise(path: Path) -> Exercise:
    text = path.read_text(encoding="utf-8")
    try:
        data = yamlfile.load(text)
    except yaml.YAMLError as exc:
        raise ExerciseError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ExerciseError(f"{path}:1: an exercise is a mapping (id, title, story, ...)")
    root = _Lines(text)  # composed only when an error needs its line
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
    for i, h in enumerate(data.get("hints") or []):
        if h.get("question") is not None and h["question"] > len(data["questions"]):
            raise ExerciseError(f"{path}:{_line_of(root, ['hints', i, 'question'])}: hints.{i}.question: "
                                f"no question {h['question']} (there are {len(data['questions'])})")
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
        hints=tuple(Hint(i + 1, h["text"], h["cost"], h.get("question")) for i, h in enumerate(data.get("hints") or [])),
        debrief=data["debrief"].strip(), path=path, draws=dict(data["incident"].get("draw") or {}),
    )


def load_exercises(folders: list[Path] | None = None) -> dict[str, Exercise]:
    """Every exercise in the shipped folder and ``folders``; the first with an id wins."""
    found: dict[str, Exercise] = {}
    for folder in [SHIPPED, *(folders or [])]:
        for path in sorted(folder.glob("*.y*ml")):
            ex = load_exercise(path)
            found.setdefault(ex.id, ex)
    return found
