"""``soc ingest <reader> PATHS...``: one subcommand per entry of ``collectors.registry.READERS``.

The subcommands are generated from the registry (a new reader needs no CLI code): each
gets the common options (``--errors``, ``--batch-size``, ``--json``, ``--store``) plus the
reader's own ``ReaderOption`` s. A Rich progress bar runs on a terminal and stays away
from pipes. Exit 0 when everything was read, 1 when some lines/records were not, 2 for
bad input (a path that does not exist, an unknown time zone).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from collectors.registry import READERS, get_reader, reader_batch_size, reader_options, reader_summary
from locales import N_, _, format_number
from soc_cli.context import StoreOption, use_store
from soc_cli.errors import raised_text
from soc_cli.output import console, emit_doc, progress, safe, text_column

COMMON = ("paths", "errors", "batch_size", "as_json", "store")


def run_ingest(reader_name: str, paths: list[Path], *, errors: Path | None, batch_size: int, as_json: bool,
               store_url: str | None, options: dict[str, Any]) -> None:
    from collectors.pipeline import ingest

    if batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    reader = get_reader(reader_name, **options)
    store = use_store(store_url)
    if sys.stderr.isatty() and not as_json:
        from rich.progress import BarColumn, TimeRemainingColumn, TransferSpeedColumn

        from collectors.pipeline import ProgressTick

        with progress(BarColumn(), text_column("{task.fields[events]:,} events"), TransferSpeedColumn(),
                      TimeRemainingColumn()) as bar:
            task = bar.add_task(f"ingest {reader_name}", total=None, events=0)

            def on_tick(t: ProgressTick) -> None:
                bar.update(task, completed=t.bytes_done, total=t.bytes_total or None, events=t.events,
                           description=f"{reader_name} {t.file_index + 1}/{t.files} {t.path.name}")

            report = ingest(store, reader, paths, batch_size=batch_size, progress=on_tick, errors_file=errors)
    else:
        report = ingest(store, reader, paths, batch_size=batch_size, errors_file=errors)
    if as_json:
        emit_doc(report.as_dict())
    else:
        print_report(report, errors)
    if report.problem_count:
        raise typer.Exit(1)


FILES_SHOWN = 20


def print_report(report: Any, errors: Path | None) -> None:
    """One row per file (the first ``FILES_SHOWN``), a total, then problems by reason."""
    from rich.table import Table

    files = Table(header_style="bold", title=safe(f"soc ingest {report.reader}"), title_justify="left")
    files.add_column(_("file"), overflow="fold", ratio=1)
    for name in (N_("events"), N_("new"), N_("already stored"), N_("problems"), N_("resumed")):
        files.add_column(_(name), justify="right", no_wrap=True)
    n = format_number
    for f in report.files[:FILES_SHOWN]:
        files.add_row(safe(f.path), n(f.events), n(f.written), n(f.duplicates), n(f.problems),
                      _("yes") if f.resumed and not f.duplicate_of else "")
    if len(report.files) > FILES_SHOWN:
        files.add_row(safe(_("... {n} more files").format(n=len(report.files) - FILES_SHOWN)), "", "", "", "", "")
    rate = report.events / report.elapsed if report.elapsed > 0 else 0.0
    files.add_section()
    files.add_row(safe(_("total: {files} files, {seconds} s, {rate}/s").format(
                      files=len(report.files), seconds=n(round(report.elapsed, 2)), rate=n(round(rate)))),
                  n(report.events), n(report.written), n(report.duplicates), n(report.problem_count),
                  "", style="bold")
    console.print(files)
    for f in report.files:
        if f.duplicate_of:
            console.print(safe(_("{path}: a copy of {original}, already stored: nothing new").format(
                path=f.path, original=f.duplicate_of)), highlight=False)
    if report.problems:
        tbl = Table(_("problem"), _("count"), _("first seen at"), header_style="bold")
        examples: dict[str, Any] = {}
        for p in report.examples:
            examples.setdefault(p.reason, p)
        for reason, count in report.problems.most_common():
            ex = examples.get(reason)
            where = f"{ex.source} {raised_text(ex.position)}" if ex else ""
            tbl.add_row(safe(raised_text(reason)), format_number(count), safe(where))
        console.print(tbl)
        if errors:
            console.print(safe(_("all problems written to {path}").format(path=errors)))


def make_command(reader_name: str) -> Callable[..., None]:
    """A function whose signature Typer reads: the common parameters plus the reader's options."""
    extra = reader_options(reader_name)

    def command(**kwargs: Any) -> None:
        run_ingest(reader_name, kwargs["paths"], errors=kwargs["errors"], batch_size=kwargs["batch_size"],
                   as_json=kwargs["as_json"], store_url=kwargs["store"],
                   options={o.name: kwargs[o.name] for o in extra})

    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("paths", kw, annotation=list[Path],
                          default=typer.Argument(..., help="files, folders or globs; - for standard input (line readers)",
                                                 show_default=False)),
        inspect.Parameter("errors", kw, annotation=Path | None,
                          default=typer.Option(None, "--errors", help="write every unreadable line/record here (JSON lines)")),
        inspect.Parameter("batch_size", kw, annotation=int,
                          default=typer.Option(reader_batch_size(reader_name), "--batch-size",
                                               help="events per store write and checkpoint")),
        inspect.Parameter("as_json", kw, annotation=bool, default=typer.Option(False, "--json", help="report as JSON")),
        inspect.Parameter("store", kw, annotation=str | None, default=StoreOption),
    ]
    for opt in extra:
        params.append(inspect.Parameter(opt.name, kw, annotation=opt.type | None,
                                        default=typer.Option(None, "--" + opt.name.replace("_", "-"), help=opt.help)))
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = reader_summary(reader_name)
    command.__name__ = f"ingest_{reader_name}"
    return command


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Read sources into the store (resumable, never twice).", no_args_is_help=True)
    app.add_typer(group, name="ingest")
    for name in READERS:
        group.command(name, help=reader_summary(name))(make_command(name))
