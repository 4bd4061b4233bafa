"""``soc detect run`` and ``soc detect watch``: Sigma rules over the store, alerts into it."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from locales import _, format_number
from soc_cli.context import StoreOption, idle_cpus, since_option, use_store
from soc_cli.errors import raised_text
from soc_cli.output import console, emit_json, err_console, esc, safe

RulesOption = typer.Option(None, "--rules", help="extra rules folder (repeatable), beside the shipped rules")


def _print(report: object, as_json: bool) -> None:
    from detections.runner import RunReport

    assert isinstance(report, RunReport)
    if as_json:
        emit_json([report.as_dict()])
        return
    summary = _("{events} events from {since} to {until}, {rules} rules, {matches} matches -> {new} new, "
                "{updated} updated alert(s) in {seconds} s").format(
        events=format_number(report.events), since=report.since or _("the start"), until=report.until,
        rules=report.rules, matches=format_number(report.matches), new=report.alerts_new,
        updated=report.alerts_updated, seconds=format_number(round(report.seconds, 2)))
    console.print(f"{esc(report.backend)}: {esc(summary)}", highlight=False)
    for rule, n in sorted(report.per_rule.items()):
        console.print(safe(f"  {rule}: {n}"), highlight=False)
    if report.problems:
        err_console.print(esc(_("{n} rule(s) unusable: see `soc rules validate`").format(n=report.problems)))
    for eid, reason in report.write_errors:
        not_stored = _("alert {id} not stored:").format(id=eid)
        err_console.print(f"[red]{esc(not_stored)}[/] {esc(raised_text(reason))}", highlight=False)
    for key, why in report.failed.items():
        failed, stays = _("rule {id} failed:").format(id=key), _("(its cursor stays: retried next run)")
        err_console.print(f"[red]{esc(failed)}[/] {esc(raised_text(why))} {esc(stays)}", highlight=False)


@contextmanager
def _match_writer(path: Path | None) -> Iterator[Callable[[str, Mapping[str, Any]], None] | None]:
    """``--matches FILE``: one JSON line per (rule, event) match, written as the run finds them.

    Streamed, so memory does not grow with the matches (an alert keeps a bounded sample of its
    evidence; this file has them all). The values come from the store: through ``emit_json``'s
    encoder, as every other JSON the command prints.
    """
    if path is None:
        yield None
        return
    from soc_cli.output import json_text

    def row(rule: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        return {"rule": rule, "event.id": doc.get("event.id"), "@timestamp": doc.get("@timestamp"),
                "event.dataset": doc.get("event.dataset")}

    if str(path) == "-":
        yield lambda rule, doc: emit_json([row(rule, doc)], ndjson=True)
        return
    with path.open("w", encoding="utf-8") as out:
        def write(rule: str, doc: Mapping[str, Any]) -> None:
            out.write(json_text(row(rule, doc)) + "\n")

        yield write


def register(app: typer.Typer) -> None:
    detect = typer.Typer(help="Run the detection rules over the store.", no_args_is_help=True)
    app.add_typer(detect, name="detect")

    @detect.command("run")
    def run(
        since: str = typer.Option(None, "--since",
                                  help="evaluate from here (15m, 24h, 7d, ISO), also for rules whose cursor is "
                                       "later: the window is re-evaluated, its alerts updated, never doubled "
                                       "[default: 1h, for rules with no cursor yet]"),
        until: str = typer.Option(None, "--until", help="end of the range (default: now)"),
        lookback: str = typer.Option("5m", "--lookback", help="re-read this much before each cursor (late events)"),
        reset: bool = typer.Option(False, "--reset", help="ignore the cursors: evaluate from --since"),
        rules: list[Path] = RulesOption,
        no_shipped: bool = typer.Option(False, "--no-shipped", help="only the --rules folders"),
        matches: Path = typer.Option(None, "--matches", metavar="FILE",
                                     help="write every (rule, event id) match as JSON lines ('-': stdout)"),
        as_json: bool = typer.Option(False, "--json"),
        store: str = StoreOption,
    ) -> None:
        """One pass: every rule from its cursor (minus the look-back) to now, or from --since; alerts upserted."""
        from detections.runner import load_compiled, run_detections
        from eventstore.gc_pause import gc_paused
        from eventstore.timeutil import parse_duration

        # the cyclic GC off for this one-shot run: the rule set is long-lived, events and alerts
        # form no cycles (each walk of a SigmaHQ-sized set took ~0.1 s, several per run); what
        # lives on is frozen before the collector is back on, or it would walk it once more
        with _match_writer(matches) as on_match, gc_paused():
            # before the spinner's thread starts: a cold compile of a large set may fork workers
            compiled = load_compiled(rules or [], shipped=not no_shipped, jobs=idle_cpus())
            gc.freeze()
            with console.status(esc(_("loading rules and evaluating..."))):
                report = run_detections(
                    use_store(store), since=since_option(since or "1h"), until=since_option(until),
                    rules_dirs=rules or [], lookback=parse_duration(lookback), reset=reset, shipped=not no_shipped,
                    rewind=since is not None, on_match=on_match, compiled=compiled,
                )
            gc.freeze()
        _print(report, as_json)
        if report.write_errors or report.failed:
            raise typer.Exit(1)

    @detect.command("watch")
    def watch(
        interval: str = typer.Option("1m", "--interval", help="time between runs"),
        since: str = typer.Option("1h", "--since", help="start for rules with no cursor yet"),
        lookback: str = typer.Option("5m", "--lookback"),
        iterations: int = typer.Option(None, "--iterations", help="stop after N runs (default: until Ctrl-C)"),
        rules: list[Path] = RulesOption,
        as_json: bool = typer.Option(False, "--json"),
        store: str = StoreOption,
    ) -> None:
        """Run every --interval until interrupted; a restart continues from the cursors."""
        from detections.runner import watch as watch_loop
        from eventstore.timeutil import parse_duration

        try:
            watch_loop(use_store(store), parse_duration(interval), rules or [], lookback=parse_duration(lookback),
                       since=since_option(since), iterations=iterations, on_report=lambda r: _print(r, as_json))
        except KeyboardInterrupt:
            err_console.print(_("stopped"))
