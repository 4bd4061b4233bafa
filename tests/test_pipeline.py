"""The ingest loop on both stores: checkpoints after writes, idempotent ids, problems counted, rotation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.base import Batch, Checkpoint
from collectors.jsonl import JsonlReader
from collectors.pipeline import CHECKPOINT_KIND, ProgressTick, expand_paths, ingest
from collectors.syslog import SyslogReader
from eventstore import Store


def sshd_lines(start: int, n: int) -> str:
    return "".join(f"Nov 25 10:{(i // 60) % 60:02d}:{i % 60:02d} h sshd[{i}]: Failed password for u{i} from "
                   f"10.0.{(i // 250) % 250}.{i % 250} port {1024 + i} ssh2\n" for i in range(start, start + n))


def ids(store: Store) -> set[str]:
    return {d["event.id"] for d in store.scan("*", fields=["event.id"])}


def test_ingest_twice_stores_once(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_text(sshd_lines(0, 250))
    ticks: list[ProgressTick] = []
    first = ingest(store, SyslogReader(tz="UTC"), [path], batch_size=100, progress=ticks.append)
    assert (first.events, first.written, first.duplicates, first.problem_count) == (250, 250, 0, 0)
    assert ticks[-1].bytes_done == ticks[-1].bytes_total == path.stat().st_size
    assert store.count("event.dataset:system.auth") == 250
    # the checkpoint says everything is read: nothing is read again
    second = ingest(store, SyslogReader(tz="UTC"), [path])
    assert (second.events, second.written) == (0, 0) and second.files[0].resumed
    # even without checkpoints, the same input stores nothing new
    for key, _ in store.list_state(CHECKPOINT_KIND):
        store.delete_state(CHECKPOINT_KIND, key)
    third = ingest(store, SyslogReader(tz="UTC"), [path], batch_size=64)
    assert (third.events, third.written, third.duplicates) == (250, 0, 250)
    assert store.count() == 250


def test_problems_counted_and_written(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_text(sshd_lines(0, 3) + "garbage one\n" + sshd_lines(3, 2) + "garbage two\n<300>Nov 25 10:00:00 h sshd[1]: bad pri\n")
    errors = tmp_path / "errors.jsonl"
    report = ingest(store, SyslogReader(tz="UTC"), [path], errors_file=errors)
    assert report.written == 5
    assert dict(report.problems) == {"no syslog header": 2, "bad priority": 1}
    rows = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [r["position"].split(" (")[0] for r in rows] == ["line 4", "line 7", "line 8"]
    assert rows[0] == {"source": str(path), "position": rows[0]["position"], "reason": "no syslog header",
                       "raw": "garbage one"}
    assert report.as_dict()["problems"] == {"no syslog header": 2, "bad priority": 1}


def test_paths_folders_and_globs(tmp_path: Path) -> None:
    (tmp_path / "logs" / "old").mkdir(parents=True)
    for name in ("logs/a.log", "logs/old/b.log", "logs/c.evtx", "logs/.hidden"):
        (tmp_path / name).write_text("x\n")
    assert [p.name for p in expand_paths([tmp_path / "logs"])] == ["a.log", "c.evtx", "b.log"]
    assert [p.name for p in expand_paths([tmp_path / "logs"], ("*.evtx",))] == ["c.evtx"]
    assert [p.name for p in expand_paths([f"{tmp_path}/logs/**/*.log"])] == ["a.log", "b.log"]
    assert len(expand_paths([tmp_path / "logs/a.log", tmp_path / "logs"])) == 3  # no file twice
    with pytest.raises(ValueError, match="no such file or folder"):
        expand_paths([tmp_path / "missing.log"])
    with pytest.raises(ValueError, match="no file matches"):
        expand_paths([f"{tmp_path}/*.nothing"])


def test_rotation_keeps_the_checkpoint_with_the_content(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(sshd_lines(0, 40))
    assert ingest(store, SyslogReader(tz="UTC"), [log]).written == 40
    # the daemon writes 10 more lines, then logrotate renames the file and a new one starts
    with log.open("a") as fh:
        fh.write(sshd_lines(40, 10))
    log.rename(tmp_path / "auth.log.1")
    log.write_text(sshd_lines(50, 5))
    report = ingest(store, SyslogReader(tz="UTC"), [tmp_path])
    assert report.events == 15 and report.written == 15 and report.duplicates == 0
    assert store.count() == 55


class FlakyReader(JsonlReader):
    """Dies after ``fail_after`` batches the first time (a crash inside the reader, not a mock of the store)."""

    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after

    def batches(self, path: Path, resume: Checkpoint | None, batch_size: int, *,
                identity: str | None = None) -> Iterator[Batch]:
        for n, batch in enumerate(super().batches(path, resume, batch_size, identity=identity)):
            if n == self.fail_after:
                raise RuntimeError("disk on fire")
            yield batch


def test_reader_crash_loses_nothing_and_resume_repeats_nothing(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    rows: list[dict[str, Any]] = [{"@timestamp": f"2026-11-25T10:00:{i % 60:02d}Z", "message": f"m{i}"}
                                  for i in range(95)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    crashed = ingest(store, FlakyReader(fail_after=3), [path], batch_size=10)
    assert crashed.written == 30 and dict(crashed.problems) == {"reader failed: RuntimeError": 1}
    resumed = ingest(store, JsonlReader(), [path], batch_size=10)
    assert resumed.events == 65 and resumed.written == 65 and resumed.duplicates == 0
    assert store.count() == 95 and len(ids(store)) == 95


def test_unreadable_file_does_not_stop_the_others(store: Store, tmp_path: Path) -> None:
    from collectors.evtx import EvtxReader

    (tmp_path / "a.evtx").write_text("this is no event log\n")
    (tmp_path / "b.evtx").write_bytes(b"ElfFile\x00" + b"\x00" * 10)
    report = ingest(store, EvtxReader(), [tmp_path])
    assert len(report.files) == 2 and report.events == 0
    assert dict(report.problems) == {"unreadable file": 2}
    assert all(p.source.endswith(".evtx") for p in report.examples)


def test_standard_input_twice_stores_once(store: Store, tmp_path: Path) -> None:
    import io

    from collectors.evtx import EvtxReader

    text = sshd_lines(0, 30).encode()
    first = ingest(store, SyslogReader(tz="UTC"), ["-"], stdin=io.BytesIO(text), batch_size=8)
    assert (first.events, first.written) == (30, 30) and first.files[0].path == "<stdin>"
    again = ingest(store, SyslogReader(tz="UTC"), ["-"], stdin=io.BytesIO(text))
    assert (again.written, again.duplicates) == (0, 30)
    assert store.list_state(CHECKPOINT_KIND) == []  # a pipe leaves no checkpoint behind
    with pytest.raises(ValueError, match="cannot read standard input"):
        ingest(store, EvtxReader(), ["-"], stdin=io.BytesIO(b""))
    assert ingest(store, SyslogReader(), ["-"], stdin=io.BytesIO(b"")).events == 0


def test_gc_is_paused_during_a_log_ingest_and_restored(tmp_path: Path) -> None:
    import gc

    from eventstore.gc_pause import gc_paused

    seen: list[bool] = []
    path = tmp_path / "auth.log"
    path.write_text(sshd_lines(0, 30))
    from eventstore import open_store

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert gc.isenabled()
        ingest(store, SyslogReader(tz="UTC"), [path], batch_size=10, progress=lambda t: seen.append(gc.isenabled()))
        assert gc.isenabled() and seen and not any(seen)
        gc.disable()  # a caller that had it off keeps it off
        try:
            with gc_paused():
                pass
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        store.close()
