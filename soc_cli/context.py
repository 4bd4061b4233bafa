"""What every command shares: the store it talks to, the analyst's name, the error policy."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import datetime

import typer

from eventstore import Store, default_store_url, open_store
from eventstore.timeutil import parse_time


@dataclass
class CliState:
    store_url: str | None = None
    debug: bool = False
    _store: Store | None = field(default=None, repr=False)

    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.store_url or default_store_url())
            from soc_cli.output import err_console, safe

            for notice in getattr(self._store, "notices", ()):  # e.g. "schema 2 migrated to 3"
                err_console.print(safe(notice), highlight=False)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


STATE = CliState()

#: The help of every ``--store`` option (global and per command).
STORE_HELP = "sqlite:///path.db or http(s)://host:9200 (default: $SOC_STORE, else a SQLite file in the user data dir)"

#: Reused by every command that touches the store (the ARCHITECTURE convention). No ``envvar``
#: on purpose: a flag read from the environment would be set on every subcommand and beat the
#: global ``soc --store``. The order is: the command's ``--store``, the global ``--store``,
#: ``SOC_STORE`` (read by :func:`eventstore.default_store_url`), the default file.
StoreOption = typer.Option(None, "--store", help=STORE_HELP)


def idle_cpus() -> int:
    """CPUs this process may use that the load average does not already take (at least 1): the
    default of the commands that fork workers (a worker on a CPU already taken only adds its
    start-up to the run)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cpus, round(cpus - busy)))


def use_store(url: str | None) -> Store:
    """Open the store named on this command (or globally, or by default)."""
    if url:
        STATE.store_url = url
    return STATE.store()


def analyst() -> str:
    return os.environ.get("SOC_ANALYST") or getpass.getuser()


def since_option(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        from soc_cli.errors import raised_text

        raise typer.BadParameter(raised_text(exc)) from exc
