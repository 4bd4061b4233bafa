"""The reader registry: ``soc ingest <name>`` exists for every entry of ``READERS``.

Adding a source is one entry here, not another branch in the CLI. Entries are
:class:`LazyReader` s so that listing the readers (``soc --help``) imports neither the
EVTX parser nor the packet libraries: the module named in ``target`` is imported only
when a reader is built.

A reader that takes options declares them as :class:`ReaderOption` s; ``soc ingest
<name>`` turns each into ``--<name>`` (underscores become dashes) and passes the given
value to the factory as a keyword argument (``None`` when not given: the factory's own
default applies). Example for a plugin::

    "pcap": LazyReader("collectors.pcap.reader:PcapReader", "pcap / pcapng captures (plain or gzip)",
                       options=(ReaderOption("idle_timeout", float, "flow idle timeout, seconds"),)),
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collectors.base import Reader


@dataclass(frozen=True, slots=True)
class ReaderOption:
    name: str  # python identifier; the CLI flag is --name-with-dashes
    type: type  # str, int, float or bool
    help: str


@dataclass(frozen=True, slots=True)
class LazyReader:
    """A factory that imports ``module:Class`` on first call."""

    target: str
    summary: str
    options: tuple[ReaderOption, ...] = ()
    #: ``soc ingest``'s default ``--batch-size``: events per store write and checkpoint
    batch_size: int = 2000

    def __call__(self, **options: Any) -> Reader:
        module_name, _, attr = self.target.partition(":")
        factory: Any = getattr(importlib.import_module(module_name), attr)
        kwargs = {k: v for k, v in options.items() if v is not None}
        reader: Reader = factory(**kwargs)
        return reader


_YEAR = ReaderOption("year", int, "year of RFC 3164 timestamps (default: inferred from the file's mtime)")
_TZ = ReaderOption("tz", str, "time zone of RFC 3164 timestamps, e.g. Europe/Paris (default: local)")

#: default batch of the log readers (see READERS)
LOG_BATCH = 10_000

READERS: dict[str, Callable[..., Reader]] = {
    # log readers write 10,000 events per transaction: the SQLite store takes ~30 % more
    # events per CPU-second than at 2,000 (bench/auth.py), and a re-read after a crash is cheap
    "syslog": LazyReader("collectors.syslog:SyslogReader",
                         "Linux auth logs: RFC 3164 / RFC 5424 syslog (auth.log, secure)", (_YEAR, _TZ),
                         batch_size=LOG_BATCH),
    "journald": LazyReader("collectors.journald:JournaldReader", "journald JSON export (journalctl -o json)",
                           batch_size=LOG_BATCH),
    "evtx": LazyReader("collectors.evtx:EvtxReader", "Windows event logs (.evtx)", batch_size=LOG_BATCH),
    "jsonl": LazyReader("collectors.jsonl:JsonlReader", "JSON lines already in ECS (flat or nested)",
                        batch_size=LOG_BATCH),
    "pcap": LazyReader("collectors.pcap.collector:PcapReader",
                       "pcap / pcapng captures (plain or gzip) into flow, DNS, HTTP, TLS and ICMP events",
                       (ReaderOption("idle_timeout", float, "flow idle timeout, seconds (default 120)"),
                        ReaderOption("active_timeout", float, "flow active timeout, seconds (default 1800)"),
                        ReaderOption("no_apps", bool, "flows only: skip the DNS/HTTP/TLS/ICMP decoders"),
                        ReaderOption("max_flows", int, "open flows kept at most (default 10,000); past it the "
                                     "least recently seen are reported with event.reason evicted"))),
}


def get_reader(name: str, **options: Any) -> Reader:
    factory = READERS.get(name)
    if factory is None:
        raise ValueError(f"unknown reader {name!r}: expected one of {', '.join(sorted(READERS))}")
    return factory(**options)


def reader_summary(name: str) -> str:
    return getattr(READERS[name], "summary", "") or name


def reader_batch_size(name: str) -> int:
    """The default ``--batch-size`` of ``soc ingest <name>``."""
    return int(getattr(READERS[name], "batch_size", 2000))


def reader_options(name: str) -> tuple[ReaderOption, ...]:
    return tuple(getattr(READERS[name], "options", ()))
