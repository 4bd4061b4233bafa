"""Every shipped exercise loads, and is solvable from the data it generates (CI proves it).

For each exercise: generate its incident with the fixed seed into a fresh store, let the
collectors, the policy engine and the detections run, derive each answer from the store
with the question's ``solution`` (the way an analyst would), and check that the answer key
accepts it and rejects the wrong example.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventstore import open_store
from playbooks.answers import check, render
from playbooks.exercise import SHIPPED, ExerciseError, load_exercise, load_exercises
from playbooks.session import prepare, solve

END = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
EXERCISES = sorted(SHIPPED.glob("*.yml"))


def test_at_least_eight_exercises_with_distinct_generators() -> None:
    exercises = load_exercises()
    assert len(exercises) >= 8
    assert len({e.generator for e in exercises.values()}) >= 8


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_exercise_is_solvable(path: Path, tmp_path: Path) -> None:
    exercise = load_exercise(path)
    store = open_store(f"sqlite:///{tmp_path / 'soc.db'}")
    try:
        prepare(exercise, store, tmp_path, end=END)
        for q in exercise.questions:
            derived = solve(store, q.solution)
            assert derived not in (None, [], ""), f"question {q.number}: the solution finds nothing"
            assert check(q.answer, render(derived)), f"question {q.number}: key rejects the derived {derived!r}"
            assert q.wrong_example is not None
            assert not check(q.answer, render(q.wrong_example)), f"question {q.number}: key accepts a wrong answer"
    finally:
        store.close()


def test_schema_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text((SHIPPED / "dns-tunnel.yml").read_text().replace("difficulty: intermediate", "difficulty: easy"))
    with pytest.raises(ExerciseError) as err:
        load_exercise(bad)
    message = str(err.value)
    assert f"{bad}:" in message and "difficulty" in message and "easy" in message
    line = int(message.split(":")[1])
    assert bad.read_text().splitlines()[line - 1].startswith("difficulty:")


def test_unknown_generator_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "gen.yml"
    bad.write_text((SHIPPED / "dns-tunnel.yml").read_text().replace("generator: dns-tunnel", "generator: nope"))
    with pytest.raises(ExerciseError, match="unknown 'nope'"):
        load_exercise(bad)
