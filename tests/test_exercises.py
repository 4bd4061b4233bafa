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
@pytest.mark.parametrize("seed", [None, 4242], ids=["own-seed", "another-seed"])
@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_exercise_is_solvable(path: Path, seed: int | None, tmp_path: Path) -> None:
    """With its own seed and with another (another incident, same story), from the data alone."""
    exercise = load_exercise(path).instance(seed)
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


def test_entities_come_from_the_seed_never_the_demos() -> None:
    for ex in load_exercises().values():
        assert ex.draws, f"{ex.id}: nothing drawn from the seed"
        own, again, other = ex.instance(), ex.instance(), ex.instance(ex.seed + 1)
        assert own == again  # the same seed, the same incident
        drawn = [k for k in ex.draws if k in ex.params]
        for key in drawn:  # the file's values are the demo's: a trainee who ran the demo learns nothing
            assert own.params[key] != ex.params[key], f"{ex.id}: {key} is the demo's"
        assert any(own.params[k] != other.params[k] for k in ex.draws), f"{ex.id}: two seeds, one incident"
        texts = [own.story, own.debrief, *(q.text for q in own.questions), *(str(q.answer) for q in own.questions),
                 *(q.solution.query for q in own.questions), *(h.text for h in own.hints)]
        assert not any("${" in t for t in texts), f"{ex.id}: a placeholder left unfilled"


def test_a_hint_costs_its_own_questions_points() -> None:
    from playbooks.session import Attempt, Run, score, take_hint

    ex = load_exercises()["ssh-brute-force"].instance()
    run = Run("r", ex.id, "trainee", ex.seed, "sqlite:///x", "/tmp", 0.0)
    first = take_hint(run, ex)  # the first unsolved question's hint
    assert first.question == 1
    third = take_hint(run, ex, 3)
    assert third.question == 3
    with pytest.raises(ValueError, match="no hints left for question 3"):
        take_hint(run, ex, 3)
    run.attempts = {"1": [Attempt("x", True, "t")], "2": [Attempt("y", True, "t")]}
    sc = score(run, ex, now=60.0)
    q1, q2 = ex.questions[0].points, ex.questions[1].points
    # question 1 solved with its hint: its cost comes off; question 3 unsolved: its hint costs nothing more
    assert sc.points == q1 + q2 and sc.hint_cost == first.cost and sc.total == q1 + q2 - first.cost
