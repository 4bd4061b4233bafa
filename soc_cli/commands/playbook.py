"""``soc playbook list|show|start|status|hint|answer|score|reset|scoreboard``: exercises for trainees."""

from __future__ import annotations

from pathlib import Path

import typer

from locales import _, format_number
from soc_cli.context import STATE, StoreOption, analyst, use_store
from soc_cli.labels import label
from soc_cli.output import console, emit, esc, safe


def _exercises(folders: list[Path] | None) -> dict[str, object]:
    from playbooks.exercise import load_exercises

    return dict(load_exercises(folders or []))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Training exercises: investigate a generated incident, answer, score.",
                        no_args_is_help=True)
    app.add_typer(group, name="playbook")
    Folders = typer.Option(None, "--exercises", help="extra folder of exercise YAML files (repeatable)")

    @group.command("list")
    def list_(folders: list[Path] = Folders, as_json: bool = typer.Option(False, "--json"),
              ndjson: bool = typer.Option(False, "--ndjson")) -> None:
        """The exercises, with difficulty, ATT&CK techniques and points."""
        from playbooks.exercise import Exercise

        rows = []
        for ex in _exercises(folders).values():
            assert isinstance(ex, Exercise)
            shown = ex.difficulty if as_json or ndjson else label(ex.difficulty)  # JSON keeps the identifier
            rows.append({"id": ex.id, "title": ex.title, "difficulty": shown,
                         "techniques": list(ex.techniques), "questions": len(ex.questions), "points": ex.max_points})
        emit(rows, ["id", "title", "difficulty", "techniques", "questions", "points"], as_json=as_json, ndjson=ndjson)

    @group.command("start")
    def start(exercise_id: str, seed: int = typer.Option(None, "--seed", help="another seed: another incident, "
                                                                          "same story (default: the exercise's)"),
              trainee: str = typer.Option(None, "--trainee", envvar="SOC_TRAINEE"),
              folders: list[Path] = Folders, store: str = StoreOption) -> None:
        """Generate the incident in a store of its own and start the clock."""
        from eventstore import default_store_url
        from playbooks import session
        from playbooks.exercise import Exercise

        ex = _exercises(folders).get(exercise_id)
        if not isinstance(ex, Exercise):
            raise ValueError(_("no exercise {id}: `soc playbook list` shows them").format(id=repr(exercise_id)))
        main = store or STATE.store_url or default_store_url()  # where the score will be posted
        working = _("generating {title} and running it through collectors, policy and detections")
        with console.status(esc(working.format(title=repr(ex.title)))):
            run, counts = session.start(ex, trainee or analyst(), seed=seed, main_store_url=main)
        ex = session.played(run, ex)
        console.print(f"[bold]{esc(ex.title)}[/]  ({esc(ex.difficulty)}, {esc(', '.join(ex.techniques))})\n")
        console.print(safe(ex.story + "\n", multiline=True))
        console.print(esc(_("events: {events}  policy decisions: {decisions}  alerts: {alerts}").format(
            events=format_number(counts["pcap"] + counts["syslog"] + counts["jsonl"]),
            decisions=format_number(counts["decisions"]), alerts=format_number(counts["alerts"]))))
        console.print()
        console.print(safe(_("Point your commands at the exercise's own store:")))
        console.print(safe(f"  export SOC_STORE={run.store_url}"))
        console.print(esc(_("Then investigate (`soc alerts`, `soc hunt`, `soc pivot`) and answer:")))
        for q in ex.questions:
            points = _("{points} points").format(points=q.points)
            console.print(f"  {q.number:d}. {esc(q.text)} [dim]({esc(points)})[/]")
        console.print("\n`soc playbook answer N VALUE`, `soc playbook hint [N]`, `soc playbook score`")
        console.print(safe(_("(the score goes to the scoreboard of {store})").format(
            store=session.resolve_main_store(main))))

    @group.command("status")
    def status(folders: list[Path] = Folders) -> None:
        """The running exercise: questions, what is solved, hints used, time."""
        from playbooks import session

        run, store = session.current()
        try:
            from playbooks.exercise import Exercise

            ex = _exercises(folders)[run.exercise_id]
            assert isinstance(ex, Exercise)
            ex = session.played(run, ex)
            sc = session.score(run, ex)
            who = _("trainee {trainee}  store {store}").format(trainee=run.trainee, store=run.store_url)
            console.print(f"[bold]{esc(ex.title)}[/]  {esc(who)}")
            for q in ex.questions:
                tries = _("{n} tries").format(n=len(run.attempts.get(str(q.number), [])))
                console.print(f"  {q.number:d}. {esc(q.text)} ({q.points:d}) "
                              f"{'[green]✓[/]' if run.solved(q.number) else f'[dim]{esc(tries)}[/]'}")
            console.print(safe(_("score {total}/{max}  hints {used}/{hints}  time {minutes} min").format(
                total=sc.total, max=sc.max_points, used=len(run.hints_used), hints=len(ex.hints),
                minutes=int(sc.seconds // 60))))
        finally:
            store.close()

    @group.command("hint")
    def hint(question: int = typer.Argument(None, metavar="[N]", help="the question you want help with"),
             folders: list[Path] = Folders) -> None:
        """The next hint for question N (default: the first unsolved one); it costs that question's points."""
        from playbooks import session

        run, store = session.current()
        try:
            ex = session.played(run, _exercises(folders)[run.exercise_id])  # type: ignore[arg-type]
            h = session.take_hint(run, ex, question)
            session.save(run, store)
            where = _("question {n}").format(n=h.question) if h.question else _("the total")
            console.print(safe(_("hint {n} (-{cost} points off {where}): {text}").format(
                n=h.number, cost=h.cost, where=where, text=h.text)))
        finally:
            store.close()

    @group.command("answer")
    def answer(number: int, value: str, folders: list[Path] = Folders) -> None:
        """Answer question NUMBER; exit 1 when the answer is wrong."""
        from playbooks import session

        run, store = session.current()
        try:
            ex = session.played(run, _exercises(folders)[run.exercise_id])  # type: ignore[arg-type]
            correct = session.answer(run, ex, number, value)
            session.save(run, store)
        finally:
            store.close()
        if correct:
            right, which = _("correct"), _("question {n}").format(n=number)
            console.print(f"[green]{esc(right)}[/]: {esc(which)}")
        else:
            again = _("question {n} (try again, or `soc playbook hint`)").format(n=number)
            wrong = _("not that")
            console.print(f"[red]{esc(wrong)}[/]: {esc(again)}")
            raise typer.Exit(1)

    @group.command("score")
    def score(finish: bool = typer.Option(True, "--finish/--peek", help="finish the run and post the score"),
              folders: list[Path] = Folders, store: str = StoreOption) -> None:
        """Your score; by default finishes the run and posts it to the scoreboard of the main store
        (the one in use when the exercise started, even with SOC_STORE now naming the exercise's)."""
        from eventstore import open_store
        from playbooks import session
        from playbooks.exercise import Exercise

        run, ex_store = session.current()
        try:
            ex = _exercises(folders)[run.exercise_id]
            assert isinstance(ex, Exercise)
            ex = session.played(run, ex)
            if finish:
                target = store or STATE.store_url or run.main_store_url or session.resolve_main_store(None)
                main = open_store(session.resolve_main_store(target))
                try:
                    result = session.publish(run, ex, main)
                finally:
                    main.close()
                session.save(run, ex_store)
            else:
                result = session.score(run, ex)
        finally:
            ex_store.close()
        console.print(safe(_("{trainee}: {total}/{max} points ({answered}/{questions} answered, hints -{cost}, "
                             "{minutes} min)").format(
            trainee=run.trainee, total=result.total, max=result.max_points, answered=result.answered,
            questions=result.questions, cost=result.hint_cost, minutes=int(result.seconds // 60))))
        if finish:
            debrief = _("Debrief")
            console.print(f"\n[bold]{esc(debrief)}[/]")
            console.print(safe(ex.debrief, multiline=True))

    @group.command("reset")
    def reset() -> None:
        """Stop the running exercise and delete its store."""
        from playbooks import session

        gone = session.reset()
        console.print(safe(_("removed {run}").format(run=gone) if gone else _("no exercise was running")))

    @group.command("scoreboard")
    def scoreboard(store: str = StoreOption, as_json: bool = typer.Option(False, "--json"),
                   ndjson: bool = typer.Option(False, "--ndjson"), limit: int = typer.Option(20, "--limit")) -> None:
        """The trainees' scores, best first."""
        rows = [v for _, v in use_store(store).list_state("scoreboard")]
        rows.sort(key=lambda r: (-int(r.get("score", 0)), int(r.get("seconds", 0))))
        emit(rows[:limit], ["trainee", "exercise", "score", "max", "hints", "seconds", "@timestamp"],
             as_json=as_json, ndjson=ndjson)
