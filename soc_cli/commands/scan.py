"""``soc scan PATH... --rules DIR``: the responder's one-shot mode, files in, a timeline of matches out.

No store to set up: files and folders of collected evidence (EVTX, syslog, journald JSON, JSON
lines, pcaps; gzip looked through) are read, each event is matched in memory against the
rules (shipped ones and ``--rules`` folders, from the compiled-rule cache), and every match
is a row: time, level, rule, host and the values of the fields the rule looks at. A file that
cannot be read is reported and the scan goes on (exit 1). ``--store URL`` also keeps the
events and raises the alerts there (the same ingest and detection run as ``soc ingest`` and
``soc detect run``), the analysts' exceptions applied as ``soc detect run`` applies them: a
covered alert is stored marked suppressed, and its matches stay in the timeline, marked
(``ztsoc.alert.exception_id``; "(suppressed)" beside the level in the table), not omitted.
"""

from __future__ import annotations

import gc
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from locales import _, format_number
from soc_cli.context import StoreOption, idle_cpus, use_store
from soc_cli.labels import label
from soc_cli.output import console, emit_csv, emit_doc, emit_json, err_console, esc, safe, table

RulesOption = typer.Option(None, "--rules", help="extra rules folder (repeatable), beside the shipped rules")


class Format(StrEnum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"
    json = "json"


def _fields_text(fields: dict[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        short = name.removeprefix("winlog.event_data.")
        text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        parts.append(f"{short}={text}")
    return "; ".join(parts)


CSV_COLUMNS = ("@timestamp", "ztsoc.alert.level", "rule.id", "rule.name", "host.name", "event.id", "fields",
               "log.file.path", "ztsoc.alert.exception_id")


def _csv_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The ``--format csv`` cells of each match (``output.emit_csv`` makes them safe)."""
    return [[r["@timestamp"], r["ztsoc.alert.level"], r["rule.id"], r["rule.name"], r["host.name"] or "",
             r["event.id"], _fields_text(r["fields"]), r["log.file.path"] or "", r["ztsoc.alert.exception_id"] or ""]
            for r in rows]


#: what a scanning process needs (set before the workers fork, so they share it)
_WORKER: dict[str, Any] = {}


def _scan_file(path: Path) -> tuple[Path, str | None, Any, int, str | None]:
    """One file through a scanner of its own: (path, reader, findings, unreadable records, problem)."""
    from collectors.registry import get_reader, reader_batch_size
    from collectors.sniff import UnknownFormat, reader_for
    from detections.scan import Scanner

    try:
        name = reader_for(path)
    except (UnknownFormat, OSError) as exc:
        return path, None, None, 0, f"{path}: skipped: {exc}"
    scanner = Scanner(_WORKER["cs"], min_level=_WORKER["min_level"], keep_matched=_WORKER["keep"])
    bad, problem = 0, None
    reader = get_reader(name)
    flat = bool(getattr(reader, "flat_events", False))
    try:
        for batch in reader.batches(path, None, reader_batch_size(name)):
            scanner.feed(batch.events, flat)
            bad += len(batch.problems)
    except Exception as exc:  # one damaged file never ends the scan: what was read is matched
        problem = f"{path}: read stopped: {type(exc).__name__}: {exc}"
    return path, name, scanner.part(), bad, problem


#: below this much input a single process is done before workers would have paid for themselves
#: (forking, and each worker building on first use the predicates of the rules it meets: ~0.5 CPU s
#: each for SigmaHQ's Windows set)
_PARALLEL_BYTES = 16 << 20


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _default_jobs(todo: list[Path]) -> int:
    """One worker per idle CPU this process may use; one for a small input or a busy machine.

    A worker on a CPU already taken only adds its start-up to the run (measured on a 2-core
    machine at load 7: two workers took 20 % more wall time and 30 % more CPU than one).
    """
    if sum(_size(p) for p in todo) < _PARALLEL_BYTES:
        return 1
    return idle_cpus()


def register(app: typer.Typer) -> None:
    @app.command("scan")
    def scan(
        paths: list[Path] = typer.Argument(..., help="files and folders of evidence (EVTX, syslog, JSON lines, pcap)"),
        rules: list[Path] = RulesOption,
        no_shipped: bool = typer.Option(False, "--no-shipped", help="only the --rules folders"),
        fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, csv, jsonl (one match a line) or json"),
        as_json: bool = typer.Option(False, "--json", help="same as --format json: matches and summaries"),
        min_level: str = typer.Option(None, "--min-level", help="only matches of this level or above "
                                                                "(informational, low, medium, high, critical)"),
        top: int = typer.Option(15, "--top", help="rules listed in the per-rule summary"),
        no_cache: bool = typer.Option(False, "--no-cache", help="compile the rules without the compiled-rule cache"),
        jobs: int = typer.Option(None, "--jobs", "-j", min=1,
                                 help="processes reading files, and compiling a large rule folder the first time "
                                      "(default: the idle CPUs)"),
        store: str = StoreOption,
    ) -> None:
        """Match rules over files in memory and print one row per match, with per-level and per-rule summaries."""
        from collectors.sniff import expand
        from detections.scan import LEVELS, Scanner
        from detections.sigma.cache import load_compiled_cached
        from eventstore.gc_pause import gc_paused

        if as_json:
            fmt = Format.json
        if min_level is not None and min_level not in LEVELS:
            raise ValueError(f"--min-level must be one of {', '.join(reversed(LEVELS))}")
        started = time.perf_counter()
        # The cyclic GC off for the whole scan: the rule set is long-lived and events and
        # matches form no cycles, so its collections find nothing (as ``soc ingest`` has it).
        # What lives on is frozen before it is turned back on, or that would walk it all once.
        with gc_paused():
            # a cold compile of a large set shares the idle CPUs (or --jobs) with forked workers
            _ruleset, cs, cache = load_compiled_cached(tuple(rules or []), shipped=not no_shipped,
                                                       use_cache=not no_cache, jobs=jobs or idle_cpus())
            gc.freeze()  # nor do forked workers touch its pages for the collector
            scanner = Scanner(cs, min_level=min_level, keep_matched=store is not None)
            problems: list[str] = []
            files: dict[str, list[Path]] = {}
            read_problems = 0
            missing = [str(p) for p in paths if not p.exists()]
            if missing:
                raise ValueError(f"no such file or folder: {', '.join(missing)}")
            todo = list(expand(paths))
            workers = min(jobs or _default_jobs(todo), len(todo))
            _WORKER.update(cs=cs, min_level=min_level, keep=store is not None)
            if workers > 1:  # fork: the workers share the compiled rules already in memory
                import multiprocessing

                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    # the largest files first, so no worker is left with a big one at the end
                    done = pool.imap_unordered(_scan_file, sorted(todo, key=_size, reverse=True), chunksize=1)
                    outcomes = list(done)
            else:
                outcomes = [_scan_file(p) for p in todo]
            gc.freeze()  # the rules compiled on first use, the matches
        for path, name, part, bad_records, problem in sorted(outcomes, key=lambda o: str(o[0])):
            if problem:
                problems.append(problem)
            if name is not None:
                files.setdefault(name, []).append(path)
            if part is not None:
                scanner.merge(part)
            read_problems += bad_records
        result = scanner.finish()
        seconds = time.perf_counter() - started
        rows = [m.as_dict() for m in result.matches]
        for alert in result.correlations:
            rows.append({"@timestamp": alert.get("ztsoc.alert.first_seen"), "rule.id": alert.get("rule.id"),
                         "rule.name": alert.get("rule.name"), "ztsoc.alert.level": alert.get("ztsoc.alert.level"),
                         "event.id": alert.get("event.id"), "host.name": alert.get("host.name"),
                         "log.file.path": None, "fields": {"message": alert.get("message")}})
        rows.sort(key=lambda r: (str(r["@timestamp"]), str(r["rule.id"]), str(r["event.id"])))
        kept = _alerts_to_store(store, scanner) if store is not None else None
        for r in rows:  # a match whose alert an exception suppresses: marked, as `soc alerts` marks the alert
            r["ztsoc.alert.exception_id"] = kept[2].get((str(r["rule.id"]), str(r["event.id"]))) if kept else None
        summary = {
            "files": sum(len(v) for v in files.values()), "events": result.events, "matches": len(rows),
            "rules": len(cs.rules), "rules_matched": len({r["rule.id"] for r in rows}),
            "by_level": result.by_level(),
            "by_rule": [{"rule.id": k, "rule.name": t, "ztsoc.alert.level": lvl, "matches": n}
                        for k, t, lvl, n in result.by_rule()],
            "read_problems": read_problems, "problems": problems, "seconds": round(seconds, 3),
            "rule_cache": "hit" if cache.hit else ("written" if cache.written else "off"),
        }
        if fmt is Format.json:
            emit_doc({"matches": rows, "summary": summary})
        elif fmt is Format.jsonl:
            emit_json(rows, ndjson=True)
        elif fmt is Format.csv:
            emit_csv(CSV_COLUMNS, _csv_rows(rows))
        else:
            shown = [{**r, "fields": _fields_text(r["fields"]), "ztsoc.alert.level": str(r["ztsoc.alert.level"])
                      + (" " + _("(suppressed)") if r["ztsoc.alert.exception_id"] else "")} for r in rows]
            console.print(table(shown, ["@timestamp", "ztsoc.alert.level", "rule.name", "host.name", "fields"],
                                title=_("{n} match(es)").format(n=format_number(len(rows)))))
        _print_summary(summary, top, to_stderr=fmt is not Format.table)
        if kept is not None:
            _keep(kept, files)
        if problems or read_problems:
            raise typer.Exit(1)

    def _print_summary(summary: dict[str, Any], top: int, *, to_stderr: bool) -> None:
        out = err_console if to_stderr else console
        n = format_number
        levels = ", ".join(f"{label(lvl)} {n(count)}" for lvl, count in summary["by_level"].items()) or _("none")
        out.print(safe(_("{matches} match(es) of {matched} rule(s) in {events} event(s) from {files} file(s), {rules} "
                         "rules loaded (cache: {cache}), {seconds} s").format(
            matches=n(summary["matches"]), matched=n(summary["rules_matched"]), events=n(summary["events"]),
            files=n(summary["files"]), rules=n(summary["rules"]), cache=summary["rule_cache"],
            seconds=n(round(summary["seconds"], 2)))), highlight=False)
        out.print(safe(_("by level:") + f" {levels}"), highlight=False)
        if summary["by_rule"] and top > 0:
            if to_stderr:
                for r in summary["by_rule"][:top]:
                    out.print(safe(f"  {r['matches']:>7,}  {r['ztsoc.alert.level']:<13} {r['rule.name']}"),
                              highlight=False)
            else:
                out.print(table(summary["by_rule"][:top], ["matches", "ztsoc.alert.level", "rule.name", "rule.id"],
                                title=_("top {n} of {total} rule(s)").format(
                                    n=min(top, len(summary["by_rule"])), total=len(summary["by_rule"]))))
        for p in summary["problems"]:
            err_console.print(f"[red]{esc(p)}[/]", highlight=False)
        if summary["read_problems"]:
            err_console.print(safe(_("{n} record(s) could not be read (soc ingest --errors FILE lists them)").format(
                n=format_number(summary["read_problems"]))), highlight=False)

    def _alerts_to_store(store_url: str, scanner: Any) -> tuple[Any, Any, dict[tuple[str, str], str], list[Any]]:
        """``--store``: the store, its alert book, the excepted matches and the alerts to store
        (``Scanner.stored_alerts``: exceptions applied as ``soc detect run`` applies them). Worked out
        before the timeline is printed, so that it marks the matches an exception covers."""
        st = use_store(store_url)
        book, docs, excepted = scanner.stored_alerts(st)
        return st, book, excepted, docs

    def _keep(kept: tuple[Any, Any, dict[tuple[str, str], str], list[Any]], files: dict[str, list[Path]]) -> None:
        """``--store``: the files ingested as ``soc ingest`` does, and the scan's alerts put beside them.

        The alerts are those a detection run over these events raises (same ids), recorded in
        the store's alert book, suppressed where an exception covers them; the rules' cursors are
        left alone (the evidence may be old).
        """
        from collectors.pipeline import ingest
        from collectors.registry import get_reader, reader_batch_size
        from detections.exceptions import SUPPRESSED

        st, book, _excepted, docs = kept
        stored = 0
        for name, paths in files.items():
            report = ingest(st, get_reader(name), paths, batch_size=reader_batch_size(name))
            stored += report.written
        result = st.put_alerts(docs) if docs else None
        book.save()
        st.refresh()
        errors = len(result.errors) if result else 0
        suppressed = sum(1 for d in docs if d.get(SUPPRESSED))
        err_console.print(safe(_("stored in {backend}: {events} new event(s), {alerts} alert(s)").format(
            backend=st.backend, events=format_number(stored), alerts=format_number(len(docs)))
                               + (", " + _("{n} suppressed by an exception").format(n=format_number(suppressed))
                                  if suppressed else "")
                               + (", " + _("{n} not stored").format(n=errors) if errors else "")), highlight=False)
        if errors:
            raise typer.Exit(1)
