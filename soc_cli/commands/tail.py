"""``soc tail FILE...``: follow growing auth logs into the store (``collectors.tail``).

Prints each stored event as one line (``--ndjson``: as ECS JSON; ``--quiet``: nothing)
until Ctrl-C or SIGTERM, then a one-line summary on stderr. Uses the same checkpoints
as ``soc ingest``, so stopping and starting again neither loses nor repeats a line.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer

from locales import _, format_number
from soc_cli.context import StoreOption, use_store
from soc_cli.output import err_console, json_text, line, safe

LINE_READERS = ("syslog", "journald", "jsonl")


def _parts(event: dict[str, Any]) -> list[Any]:
    parts = [event.get("@timestamp", ""), event.get("event.dataset", ""), event.get("event.action", "-")]
    if event.get("event.outcome"):
        parts.append(event["event.outcome"])
    for key in ("user.name", "source.ip", "host.name"):
        if event.get(key):
            parts.append(f"{key}={event[key]}")
    parts.append(str(event.get("message", ""))[:120])
    return parts


def register(app: typer.Typer) -> None:
    @app.command("tail")
    def tail(
        paths: list[Path] = typer.Argument(..., help="log files to follow (they may not exist yet)"),
        reader_name: str = typer.Option("syslog", "--reader", help=f"one of {', '.join(LINE_READERS)}"),
        year: int = typer.Option(None, "--year", help="year of RFC 3164 timestamps (syslog)"),
        tz: str = typer.Option(None, "--tz", help="time zone of RFC 3164 timestamps (syslog)"),
        interval: float = typer.Option(0.5, "--interval", help="seconds between polls"),
        from_end: bool = typer.Option(False, "--from-end", help="skip what a never-seen file already holds"),
        retire_after: float = typer.Option(5.0, "--retire-after", help="seconds a rotated file is still read"),
        batch_size: int = typer.Option(500, "--batch-size"),
        errors: Path = typer.Option(None, "--errors", help="append unreadable lines here (JSON lines)"),
        ndjson: bool = typer.Option(False, "--ndjson", help="print stored events as JSON lines"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="print no events"),
        store: str = StoreOption,
    ) -> None:
        """Follow growing log files (rotation and truncation survived) into the store."""
        from collectors.registry import get_reader, reader_options
        from collectors.tail import Tailer

        if reader_name not in LINE_READERS:
            raise ValueError(_("--reader {reader}: soc tail follows {readers}").format(
                reader=repr(reader_name), readers=", ".join(LINE_READERS)))
        given = {"year": year, "tz": tz}
        options = {o.name: given.get(o.name) for o in reader_options(reader_name)}
        reader = get_reader(reader_name, **options)

        def show(batch: Any) -> None:
            if quiet:
                return
            for event in batch.events:
                if ndjson:
                    line(json_text(event))
                else:
                    line(*_parts(event))

        tailer = Tailer(use_store(store), reader, paths, batch_size=batch_size, retire_after=retire_after,
                        from_end=from_end, on_batch=show, errors_file=errors)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            report = tailer.run(interval=interval, stop=stop)
        except KeyboardInterrupt:
            tailer.close()
            report = tailer.report
        said = _("tail: {events} events read, {written} new, {problems} problems").format(
            events=format_number(report.events), written=format_number(report.written),
            problems=format_number(report.problem_count))
        err_console.print(safe(said), highlight=False)
        sys.stdout.flush()
