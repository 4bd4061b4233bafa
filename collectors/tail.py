"""``soc tail``: follow growing log files into the store, through rotation and truncation.

Each poll goes through the same ``collectors.pipeline.ingest_file`` as ``soc ingest``
(same checkpoints, same ``event.id`` s), so tailing a file, stopping, and ingesting it
later never stores a line twice.

How files are followed (polling ``stat``, as ``tail -F`` and Filebeat do; inotify would
miss renames across directories and is not on every filesystem):

- The file is read through an open descriptor (``/proc/self/fd/N``), never re-opened by
  name mid-read, so a rename during a read cannot mix two files.
- Rotation (the name now points to another inode, or to nothing): the old descriptor is
  kept as *retired* and still read on every poll, because a daemon keeps writing to the
  old file until it reopens its log; once it has not grown for ``retire_after`` seconds
  it is read one last time (including a last line without newline) and closed. The new
  file at the name is followed from its start (its identity is new, so is its checkpoint).
- Truncation in place (``copytruncate``, ``> file``): the checkpoint lies past the end, so
  its mark no longer matches: the file is read from 0 under an identity of its own (even
  when it starts with the same line again), so its lines get ids of their own.
- A line still being written (no newline yet) is left for the next poll.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from collectors.base import Batch, Reader
from collectors.lines import MARK_BYTES, LineReader, marked_checkpoint
from collectors.pipeline import CHECKPOINT_KIND, IngestReport, _Problems, ingest_file, resolve
from eventstore.store import Store
from eventstore.timeutil import to_iso, utcnow


@dataclass(slots=True)
class _Open:
    fd: int
    dev_ino: tuple[int, int]
    size: int = -1
    last_growth: float = field(default_factory=time.monotonic)

    @property
    def proc_path(self) -> Path:
        return Path(f"/proc/self/fd/{self.fd}")


@dataclass(slots=True)
class _Watch:
    path: Path
    current: _Open | None = None
    retired: list[_Open] = field(default_factory=list)


class Tailer:
    """Follows ``paths``; call ``poll()`` repeatedly, or ``run()`` until stopped."""

    def __init__(self, store: Store, reader: Reader, paths: Iterable[str | Path], *, batch_size: int = 500,
                 retire_after: float = 5.0, from_end: bool = False,
                 on_batch: Callable[[Batch], None] | None = None, errors_file: str | Path | None = None) -> None:
        if not isinstance(reader, LineReader):
            raise ValueError(f"soc tail follows line-oriented sources; {getattr(reader, 'name', reader)!r} is not one")
        reader.follow = True
        self.store = store
        self.reader: LineReader = reader
        self.watches = [_Watch(Path(p)) for p in paths]
        self.batch_size = batch_size
        self.retire_after = retire_after
        self.from_end = from_end
        self.on_batch = on_batch
        self.report = IngestReport(reader=reader.name)
        self._sink = open(errors_file, "a", encoding="utf-8") if errors_file else None  # noqa: SIM115
        self._problems = _Problems(self.report, self._sink)

    def close(self) -> None:
        """Read what is left (last lines without newline too) and let go of every file."""
        for watch in self.watches:
            for opened in [*watch.retired, *([watch.current] if watch.current else [])]:
                self._read(watch, opened, final=True)
                os.close(opened.fd)
            watch.retired.clear()
            watch.current = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def run(self, *, interval: float = 0.5, stop: threading.Event | None = None) -> IngestReport:
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                self.poll()
                stop.wait(interval)
        finally:
            self.close()
        return self.report

    def poll(self) -> int:
        """One pass over every watched file; returns the events read."""
        before = self.report.events
        for watch in self.watches:
            self._poll_watch(watch)
        return self.report.events - before

    # -- internals ----------------------------------------------------------------------
    def _poll_watch(self, watch: _Watch) -> None:
        try:
            st = os.stat(watch.path)
            dev_ino: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            st, dev_ino = None, None
        if watch.current is not None and watch.current.dev_ino != dev_ino:
            watch.retired.append(watch.current)  # rotated: keep reading the old file for a while
            watch.current = None
        for opened in list(watch.retired):
            grew = self._read(watch, opened)
            if not grew and time.monotonic() - opened.last_growth >= self.retire_after:
                self._read(watch, opened, final=True)
                os.close(opened.fd)
                watch.retired.remove(opened)
        if watch.current is None and st is not None and st.st_size > 0:
            try:
                fd = os.open(watch.path, os.O_RDONLY)
            except FileNotFoundError:
                return
            fst = os.fstat(fd)
            watch.current = _Open(fd, (fst.st_dev, fst.st_ino))
            if self.from_end:
                self._skip_to_end(watch.current)
        if watch.current is not None:
            self._read(watch, watch.current)

    def _skip_to_end(self, opened: _Open) -> None:
        """``--from-end``: a file never seen before starts at its current end (complete lines only)."""
        found = resolve(self.store, self.reader, opened.proc_path)
        if found.resume is not None:
            return
        with open(opened.proc_path, "rb") as fh:
            data = fh.read()
        end = data.rfind(b"\n") + 1
        checkpoint = marked_checkpoint(opened.proc_path, end, data.count(b"\n", 0, end), data[:end][-MARK_BYTES:])
        self.store.put_state(CHECKPOINT_KIND, found.key, {
            "checkpoint": checkpoint, "reader": self.reader.name, "path": "", "updated": to_iso(utcnow())})

    def _read(self, watch: _Watch, opened: _Open, *, final: bool = False) -> bool:
        """Read new lines; True when the file grew since the last look."""
        try:
            size = os.fstat(opened.fd).st_size
        except OSError:
            return False
        grew = size != opened.size
        if grew:
            opened.size = size
            opened.last_growth = time.monotonic()
        if not grew and not final:
            return False
        if size == 0:
            return grew
        proc = opened.proc_path
        self.reader.labels[str(proc)] = str(watch.path)
        self.reader.follow = not final
        try:
            ingest_file(self.store, self.reader, proc, self.report, self._problems, batch_size=self.batch_size,
                        on_batch=self.on_batch, label=str(watch.path))
            self.store.refresh()  # what this poll stored is visible to `soc hunt` in another terminal
        finally:
            self.reader.follow = True
        return grew
