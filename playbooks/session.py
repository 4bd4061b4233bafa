"""A trainee's run of an exercise: its own store, its answers, hints, time and score.

Each run gets a store of its own (a SQLite file under the user's data directory, or the
URL given), so exercise data never mixes with production data; the trainee points the
ordinary commands at it (``SOC_STORE``, printed by ``soc playbook start``). The run's
progress lives in that store as state; the finished score goes to the scoreboard in the
main store, which the dashboard shows.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.pipeline import ingest
from collectors.registry import get_reader
from eventstore import open_store
from eventstore.store import Index, Store
from eventstore.timeutil import to_iso
from locales import _
from playbooks.answers import check, render
from playbooks.exercise import Exercise, Question, Solution
from playbooks.generators.service_calls import send_calls
from playbooks.generators.workday import generate

RUN_KIND = "exercise_run"
SCOREBOARD_KIND = "scoreboard"


def runs_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("ztsoc")) / "exercises"


@dataclass
class Attempt:
    given: str
    correct: bool
    at: str


@dataclass
class Run:
    run_id: str
    exercise_id: str
    trainee: str
    seed: int
    store_url: str
    directory: str
    started: float
    hints_used: list[int] = field(default_factory=list)
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)
    finished: float | None = None
    #: the store the trainee used before the exercise: where the score is posted, even when
    #: ``SOC_STORE`` now names the exercise's own store (as ``start`` tells them to export)
    main_store_url: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Run:
        attempts = {k: [Attempt(**a) for a in v] for k, v in (doc.get("attempts") or {}).items()}
        return cls(**{**doc, "attempts": attempts})

    def solved(self, number: int) -> bool:
        return any(a.correct for a in self.attempts.get(str(number), []))


@dataclass(frozen=True, slots=True)
class Score:
    points: int
    max_points: int
    hint_cost: int
    answered: int
    questions: int
    seconds: float

    @property
    def total(self) -> int:
        return max(0, self.points - self.hint_cost)


def prepare(exercise: Exercise, store: Store, directory: Path, *, seed: int | None = None,
            end: datetime | None = None) -> dict[str, Any]:
    """Generate the incident with its background, collect it, decide its calls, run detections."""
    from detections.runner import run_detections

    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    bg = exercise.background
    artefacts = generate(directory / "files", seed=exercise.seed if seed is None else seed, end=end,
                         flows=bg.get("flows", 300), logins=bg.get("logins", 30),
                         service_calls=bg.get("service_calls", 100),
                         incidents=[(exercise.generator, exercise.params)])
    counts: dict[str, Any] = {}
    for reader, path in (("pcap", artefacts.pcap), ("syslog", artefacts.auth_log), ("jsonl", artefacts.windows_jsonl)):
        counts[reader] = ingest(store, get_reader(reader), [path]).written
    calls = send_calls(store, artefacts.calls, directory / "pdp", changes=artefacts.policy_changes)
    counts["decisions"] = calls.calls
    report = run_detections(store, since=end - timedelta(hours=25), until=end + timedelta(hours=1))
    counts["alerts"] = report.alerts
    return counts


def start(exercise: Exercise, trainee: str, *, seed: int | None = None, store_url: str | None = None,
          base: Path | None = None, main_store_url: str | None = None) -> tuple[Run, dict[str, Any]]:
    """A new run: the exercise drawn for ``seed`` (default: its own), generated into its own store."""
    base = base or runs_dir()
    seed = exercise.seed if seed is None else seed
    exercise = exercise.instance(seed)
    main_store_url = resolve_main_store(main_store_url, base)
    run_id = f"{exercise.id}-{seed}-{int(time.time())}"
    directory = base / run_id
    directory.mkdir(parents=True, exist_ok=True)
    store_url = store_url or f"sqlite:///{directory / 'soc.db'}"
    store = open_store(store_url)
    try:
        counts = prepare(exercise, store, directory, seed=seed)
        run = Run(run_id, exercise.id, trainee, seed, store_url, str(directory), time.time(),
                  main_store_url=main_store_url)
        store.put_state(RUN_KIND, run_id, run.to_doc())
    finally:
        store.close()
    (base / "current.json").write_text(json.dumps({"run_id": run_id, "store_url": store_url,
                                                   "main_store_url": main_store_url}))
    return run, counts


def resolve_main_store(url: str | None, base: Path | None = None) -> str:
    """The store a score is posted to: ``url`` (the trainee's ``--store``/``SOC_STORE``), unless
    that is an exercise's own store (``SOC_STORE`` still exported from a run), then the main
    store that run remembered, else the default store."""
    from platformdirs import user_data_dir

    base = base or runs_dir()
    default = f"sqlite:///{Path(user_data_dir('ztsoc')) / 'soc.db'}"
    if not url:
        return default
    if url.startswith("sqlite:///") and Path(url.removeprefix("sqlite:///")).resolve().is_relative_to(base.resolve()):
        pointer = base / "current.json"
        if pointer.exists():
            remembered = json.loads(pointer.read_text()).get("main_store_url")
            if remembered:
                return str(remembered)
        return default
    return url


def current(base: Path | None = None) -> tuple[Run, Store]:
    """The active run and its store; ``ValueError`` when no exercise is running."""
    pointer = (base or runs_dir()) / "current.json"
    if not pointer.exists():
        raise ValueError(_("no exercise is running: `soc playbook start ID` first (`soc playbook list` shows them)"))
    data = json.loads(pointer.read_text())
    store = open_store(data["store_url"])
    doc = store.get_state(RUN_KIND, data["run_id"])
    if doc is None:
        store.close()
        raise ValueError(_("the run {run} has no state in {store}: `soc playbook reset`").format(
            run=data["run_id"], store=data["store_url"]))
    return Run.from_doc(doc), store


def save(run: Run, store: Store) -> None:
    store.put_state(RUN_KIND, run.run_id, run.to_doc())


def played(run: Run, exercise: Exercise) -> Exercise:
    """The exercise as this run plays it (its seed's entities in every text and answer)."""
    return exercise.instance(run.seed)


def take_hint(run: Run, exercise: Exercise, question: int | None = None) -> Any:
    """The next hint for ``question`` (default: the first unsolved question that has one left).

    A hint that belongs to a question costs that question's points; a general one the total.
    """
    unused = [h for h in exercise.hints if h.number not in run.hints_used]
    if question is not None:
        if not 1 <= question <= len(exercise.questions):
            raise ValueError(_("no question {n}: this exercise has {count}").format(
                n=question, count=len(exercise.questions)))
        unused = [h for h in unused if h.question == question]
        if not unused:
            raise ValueError(_("no hints left for question {n}").format(n=question))
    else:
        open_questions = [q.number for q in exercise.questions if not run.solved(q.number)]
        unused.sort(key=lambda h: (h.question not in open_questions,
                                   open_questions.index(h.question) if h.question in open_questions else 0, h.number))
        if not unused:
            raise ValueError(_("no hints left for this exercise"))
    run.hints_used.append(unused[0].number)
    return unused[0]


def answer(run: Run, exercise: Exercise, number: int, given: str) -> bool:
    if not 1 <= number <= len(exercise.questions):
        raise ValueError(_("no question {n}: this exercise has {count}").format(n=number, count=len(exercise.questions)))
    if run.finished is not None:
        raise ValueError(_("this run is finished: `soc playbook start` a new one"))
    question = exercise.questions[number - 1]
    correct = check(question.answer, given)
    run.attempts.setdefault(str(number), []).append(Attempt(given, correct, to_iso(datetime.now(UTC))))
    return correct


def score(run: Run, exercise: Exercise, now: float | None = None) -> Score:
    """Points of the solved questions, less the hints taken: a question's hints come off that
    question's points (never more than it is worth, nothing if it stays unsolved), a general
    hint off the total."""
    used = [h for h in exercise.hints if h.number in run.hints_used]
    points = sum(q.points for q in exercise.questions if run.solved(q.number))
    cost = sum(h.cost for h in used if h.question is None)
    for q in exercise.questions:
        if run.solved(q.number):
            cost += min(q.points, sum(h.cost for h in used if h.question == q.number))
    end = run.finished or now or time.time()
    return Score(points, exercise.max_points, cost, sum(run.solved(q.number) for q in exercise.questions),
                 len(exercise.questions), end - run.started)


def publish(run: Run, exercise: Exercise, main: Store) -> Score:
    """Finish the run and put its score on the scoreboard of the main store."""
    run.finished = run.finished or time.time()
    result = score(run, exercise)
    main.put_state(SCOREBOARD_KIND, f"{run.trainee}/{run.run_id}", {
        "trainee": run.trainee, "exercise": exercise.id, "run": run.run_id, "score": result.total,
        "max": result.max_points, "hints": len(run.hints_used), "answered": result.answered,
        "questions": result.questions, "seconds": round(result.seconds), "@timestamp": to_iso(datetime.now(UTC)),
    })
    return result


def reset(base: Path | None = None) -> str | None:
    base = base or runs_dir()
    pointer = base / "current.json"
    if not pointer.exists():
        return None
    data = json.loads(pointer.read_text())
    shutil.rmtree(base / data["run_id"], ignore_errors=True)
    pointer.unlink()
    return str(data["run_id"])


# -- solving (what CI does to prove every exercise solvable) -------------------------------
def solve(store: Store, solution: Solution) -> Any:
    """Derive an answer from the stored data the way an analyst would."""
    index: Index = "alerts" if solution.index == "alerts" else "events"
    if solution.reduce == "count":
        return store.count(solution.query, index=index)
    if solution.reduce == "top":
        rows = store.aggregate([solution.field], query=solution.query, index=index, limit=1)
        return rows[0][solution.field] if rows else None
    values = []
    for doc in store.scan(solution.query, index=index, fields=[solution.field]):
        value = doc.get(solution.field)
        values.extend(value if isinstance(value, list) else [value] if value is not None else [])
    if solution.reduce == "sum":
        total = sum(float(v) for v in values)
        return round(total / solution.divide_by) if solution.divide_by else total
    if solution.reduce == "first":
        return values[0] if values else None
    if solution.reduce == "last":
        return values[-1] if values else None
    distinct = sorted({str(v) for v in values})
    if solution.reduce == "common_suffix":  # the parent domain shared by names: a.b.example, c.b.example -> b.example
        split = [name.rstrip(".").split(".")[::-1] for name in distinct]
        shared = [labels[0] for labels in zip(*split, strict=False) if len(set(labels)) == 1] if split else []
        return ".".join(reversed(shared)) or None
    if solution.reduce == "distinct_count":
        return len(distinct)
    return distinct  # "distinct"


def solve_question(store: Store, question: Question) -> str:
    return render(solve(store, question.solution))

