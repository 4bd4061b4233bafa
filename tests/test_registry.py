"""The reader registry: lazy, complete, and the contract every registered reader keeps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collectors.base import Reader
from collectors.registry import READERS, LazyReader, get_reader, reader_options
from collectors.syslog import SyslogReader


def test_auth_readers_are_registered_and_satisfy_the_protocol() -> None:
    for name in ("syslog", "journald", "evtx", "jsonl"):
        reader = get_reader(name)
        assert isinstance(reader, Reader)
        assert reader.name == name


def test_every_registered_reader_builds() -> None:
    for name in READERS:
        reader = get_reader(name)
        assert reader.name == name and callable(reader.batches) and callable(reader.identity)


def test_unknown_reader() -> None:
    with pytest.raises(ValueError, match="unknown reader 'nope'"):
        get_reader("nope")


def test_options_reach_the_factory() -> None:
    assert {o.name for o in reader_options("syslog")} == {"year", "tz"}
    reader = get_reader("syslog", year=2001, tz=None)  # None means "not given": the default applies
    assert isinstance(reader, SyslogReader) and reader.year == 2001


def test_listing_readers_imports_no_parser() -> None:
    code = ("import sys, collectors.registry as r; assert isinstance(r.READERS['evtx'], r.LazyReader); "
            "print(sorted(m for m in ('evtx', 'collectors.evtx', 'scapy', 'dpkt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1]).stdout
    assert out.strip() == "[]"


def test_lazy_reader_imports_on_call() -> None:
    lazy = LazyReader("collectors.jsonl:JsonlReader", "x")
    assert lazy().name == "jsonl"


def test_log_readers_write_bigger_batches_than_captures() -> None:
    from collectors.registry import LOG_BATCH, reader_batch_size

    assert {name: reader_batch_size(name) for name in ("syslog", "journald", "evtx", "jsonl")} == dict.fromkeys(
        ("syslog", "journald", "evtx", "jsonl"), LOG_BATCH)
    assert reader_batch_size("pcap") == 2000
