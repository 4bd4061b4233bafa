"""Ship a reader's batches into the store: never lose, never repeat.

``ingest(store, reader, paths)`` is the one loop every ``soc ingest <reader>`` (and
``soc tail``) runs. For each file it

1. computes the reader's ``identity(path)`` (content, not path: a rotated file keeps its
   checkpoint) and loads ``store.get_state("checkpoint", "<reader>:<identity>")``; when
   that checkpoint was taken in another file with the same identity (``resolve``: the
   line readers' first line), the file gets the next identity of that lineage instead;
2. asks the reader for batches from there;
3. writes each batch with ``store.write_events`` and only THEN stores the batch's
   checkpoint with ``store.put_state``.

A ``kill -9`` between 3's two steps makes the next run read that batch again; its
events carry the same ``event.id`` so the store keeps them once (counted as
``duplicates``). Nothing is lost because a checkpoint never runs ahead of the data.

Problems (unreadable lines, packets, records; files that cannot be opened; events the
mapping refuses, written with the whole document) are counted per reason, optionally
streamed to ``errors_file`` as JSON lines, and never stop the run. A store that refuses
writes for a reason that is not the event's (a write block, a full disk, a node busy after
every retry: ``StoreRefused``) stops the ingest before that batch's checkpoint, so the same
command run again, once the cause is fixed, stores what was refused. A path that does not exist is a usage error (``ValueError``)
raised before anything is read.

``-`` among the paths reads standard input with readers that can (``StreamReader``: the
line readers); a pipe cannot be resumed, so it has no checkpoint, and its ids come from
its content (the hash of its first line + byte offset; journald's own cursor).

Plugins (e.g. the pcap reader) need nothing beyond ``collectors.base``: register the
reader in ``collectors.registry.READERS`` and this pipeline and the CLI pick it up.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import hashlib
import json
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from collectors.base import Batch, Checkpoint, Reader, ReadProblem, StreamReader, VerifyingReader, file_size
from eventstore.store import Store
from eventstore.timeutil import to_iso, utcnow

#: what a damaged or foreign file raises (a bad .gz raises zlib.error or EOFError part-way):
#: reported as that file's problem, and the run goes on with the next file
UNREADABLE = (OSError, ValueError, EOFError, zlib.error)
#: ``store`` state kind holding every collector checkpoint.
CHECKPOINT_KIND = "checkpoint"
#: How many problems the report keeps as examples (all are counted and go to ``errors_file``).
EXAMPLES_KEPT = 20


@dataclass(frozen=True, slots=True)
class ProgressTick:
    """Sent after every committed batch (and when a file starts)."""

    path: Path
    file_index: int  # 0-based
    files: int
    bytes_done: int  # over all files
    bytes_total: int
    events: int  # read so far, all files


@dataclass(slots=True)
class FileReport:
    path: str
    identity: str | None
    events: int = 0
    written: int = 0
    duplicates: int = 0
    problems: int = 0
    resumed: bool = False
    #: the file already stored that this one repeats (same identity, nothing new in it)
    duplicate_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "identity": self.identity, "events": self.events, "written": self.written,
                "duplicates": self.duplicates, "problems": self.problems, "resumed": self.resumed,
                "duplicate_of": self.duplicate_of}


@dataclass(slots=True)
class IngestReport:
    reader: str
    files: list[FileReport] = field(default_factory=list)
    events: int = 0  # read from the sources
    written: int = 0  # new in the store
    duplicates: int = 0  # already in the store (a re-read after a crash, or the same input twice)
    problems: Counter[str] = field(default_factory=Counter)  # reason -> count
    examples: list[ReadProblem] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def problem_count(self) -> int:
        return sum(self.problems.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "reader": self.reader, "files": [f.as_dict() for f in self.files], "events": self.events,
            "written": self.written, "duplicates": self.duplicates, "problems": dict(self.problems),
            "problem_examples": [p.as_dict() for p in self.examples], "elapsed_seconds": round(self.elapsed, 3),
        }


def checkpoint_key(reader: Reader, identity: str) -> str:
    return f"{reader.name}:{identity}"


#: distinct files one identity may stand for before the next ones are refused (a bound on probing)
MAX_LINEAGE = 10_000


@dataclass(frozen=True, slots=True)
class Resolved:
    """Which identity a file is read under, its checkpoint key and where it resumes."""

    identity: str
    key: str
    resume: Checkpoint | None
    #: the file the checkpoint was taken in (another path: a copy, a rotation, a rename)
    seen_as: str | None = None


def resolve(store: Store, reader: Reader, path: Path) -> Resolved:
    """The identity ``path`` is read under and its checkpoint.

    The reader's ``identity`` first. A ``VerifyingReader`` (the line readers) may find that the
    checkpoint under it was taken in another file that merely begins the same way; then the
    next identities of that lineage (``sha1("<identity>/<n>")``) are tried in order, and the
    first free one starts the file from its beginning. Event ids follow the resolved identity,
    so two such files never share an id. The first file of a lineage keeps the plain identity:
    checkpoints and ids from before this check stay valid.
    """
    base = reader.identity(path)
    if not isinstance(reader, VerifyingReader):
        saved = store.get_state(CHECKPOINT_KIND, checkpoint_key(reader, base))
        return Resolved(base, checkpoint_key(reader, base), saved.get("checkpoint") if saved else None,
                        saved.get("path") if saved else None)
    for n in range(MAX_LINEAGE):
        identity = base if n == 0 else hashlib.sha1(f"{base}/{n}".encode()).hexdigest()
        key = checkpoint_key(reader, identity)
        saved = store.get_state(CHECKPOINT_KIND, key)
        resume = saved.get("checkpoint") if saved else None
        if resume is None or reader.matches(path, resume):
            return Resolved(identity, key, resume, saved.get("path") if saved else None)
    raise ValueError(f"more than {MAX_LINEAGE} distinct files begin like this one")


def expand_paths(paths: Iterable[str | Path], patterns: Sequence[str] = ()) -> list[Path]:
    """Files named, found by a glob, or found under a folder (recursively, sorted, hidden skipped).

    ``patterns`` (e.g. ``("*.evtx",)``) filter files found under folders; files named
    explicitly are always taken.
    """
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    for raw in paths:
        p = Path(raw)
        if p.is_file() or (p.exists() and not p.is_dir()):
            add(p)
        elif p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(p).parts) and (
                        not patterns or any(child.match(pat) for pat in patterns)):
                    add(child)
        elif glob.has_magic(str(raw)):
            matches = sorted(Path(m) for m in glob.glob(str(raw), recursive=True))
            if not matches:
                raise ValueError(f"no file matches {raw}")
            for m in matches:
                if m.is_file():
                    add(m)
        else:
            raise ValueError(f"no such file or folder: {raw}")
    return out


class _Problems:
    """Counts problems, keeps a few examples, streams all of them to the errors file."""

    def __init__(self, report: IngestReport, sink: IO[str] | None) -> None:
        self.report = report
        self.sink = sink

    def add(self, problems: Iterable[ReadProblem]) -> int:
        n = 0
        for p in problems:
            n += 1
            self.report.problems[p.reason] += 1
            if len(self.report.examples) < EXAMPLES_KEPT:
                self.report.examples.append(p)
            if self.sink is not None:
                self.sink.write(json.dumps(p.as_dict(), ensure_ascii=False) + "\n")
        return n


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while batches are read and written.

    Events are flat dicts of strings, numbers and lists: they form no reference cycles, so
    the collector finds nothing, yet a batch of a few thousand of them kept alive triggers
    generation scans over everything that lives (measured ~10-20 % of the sshd parse).
    Reference counting still frees every batch once written; the store pauses it the same
    way around each write. Restored on exit (only if it was on). Only for readers that say
    so (``no_cycles = True``: the line readers, EVTX): a reader keeping state objects that
    point at each other (flow tables) would otherwise grow until the run ends.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


#: the path that means "standard input" (``journalctl -o json | soc ingest journald -``)
STDIN = "-"


def ingest(
    store: Store,
    reader: Reader,
    paths: Iterable[str | Path],
    *,
    batch_size: int = 2000,
    progress: Callable[[ProgressTick], None] | None = None,
    errors_file: str | Path | None = None,
    stdin: BinaryIO | None = None,
) -> IngestReport:
    """Read every file with ``reader`` into ``store``, resuming each from its checkpoint.

    ``-`` reads ``stdin`` (default: this process's standard input) when the reader can
    read a stream (``stream_batches``: the line readers); a pipe has no checkpoint, but
    its events keep ids derived from its content, so piping the same text twice stores it once.
    """
    started = time.perf_counter()
    paths = [str(p) for p in paths]
    files = [Path(STDIN) if p == STDIN else f for p in paths
             for f in ([Path(p)] if p == STDIN else expand_paths([p], getattr(reader, "patterns", ())))]
    if paths.count(STDIN) > 1:
        raise ValueError("standard input (-) can be read once")
    if STDIN in paths and not isinstance(reader, StreamReader):
        raise ValueError(f"the {reader.name} reader cannot read standard input: name a file")
    report = IngestReport(reader=reader.name)
    sizes = [0 if str(p) == STDIN else file_size(p) for p in files]
    total = sum(sizes)
    sink: IO[str] | None = open(errors_file, "w", encoding="utf-8") if errors_file else None  # noqa: SIM115
    try:
        with gc_paused() if getattr(reader, "no_cycles", False) else contextlib.nullcontext():
            problems = _Problems(report, sink)
            done_before = 0
            for index, path in enumerate(files):
                if progress:
                    progress(ProgressTick(path, index, len(files), done_before, total, report.events))

                def tick(consumed: int, path: Path = path, index: int = index, base: int = done_before) -> None:
                    if progress:
                        progress(ProgressTick(path, index, len(files), base + consumed, total, report.events))

                if str(path) == STDIN and isinstance(reader, StreamReader):
                    stream = stdin if stdin is not None else sys.stdin.buffer
                    report.files.append(_ingest_batches(store, reader, reader.stream_batches(stream, batch_size),
                                                        FileReport("<stdin>", None), report, problems, key=None))
                else:
                    report.files.append(ingest_file(store, reader, path, report, problems, batch_size=batch_size,
                                                    tick=tick))
                done_before += sizes[index]
                if progress:
                    progress(ProgressTick(path, index, len(files), done_before, total, report.events))
        # read your writes: when the command returns, the next one (any process) sees the events
        store.refresh()
    finally:
        if sink is not None:
            sink.close()
    report.elapsed = time.perf_counter() - started
    return report


def ingest_file(
    store: Store,
    reader: Reader,
    path: Path,
    report: IngestReport,
    problems: _Problems | None = None,
    *,
    batch_size: int = 2000,
    tick: Callable[[int], None] | None = None,
    on_batch: Callable[[Batch], None] | None = None,
    label: str | None = None,
) -> FileReport:
    """One file: load its checkpoint, write each batch, then commit the batch's checkpoint.

    ``on_batch`` sees each batch once it is committed (``soc tail`` prints its events);
    ``label`` is the path to show when ``path`` is a ``/proc/self/fd/N`` alias.
    """
    problems = problems or _Problems(report, None)
    shown = label or str(path)
    try:
        found = resolve(store, reader, path)
    except UNREADABLE as exc:
        problems.add([ReadProblem(shown, "file", "unreadable file", f"{type(exc).__name__}: {exc}")])
        return FileReport(shown, None, problems=1)
    fr = FileReport(shown, found.identity, resumed=found.resume is not None)
    batches = (reader.batches(path, found.resume, batch_size, identity=found.identity)
               if isinstance(reader, VerifyingReader) else reader.batches(path, found.resume, batch_size))
    done = _ingest_batches(store, reader, batches, fr, report, problems, key=found.key, tick=tick, on_batch=on_batch)
    if found.seen_as and found.seen_as != shown and done.written == 0 and done.duplicates == done.events:
        done.duplicate_of = found.seen_as  # a copy of a file already stored: say so, not "resumed, 0 events"
    return done


def _document(by_id: dict[Any, Any], ident: str, events: list[Any]) -> dict[str, Any] | None:
    """The refused event, named by its ``event.id`` or, lacking one, its position in the batch."""
    doc = by_id.get(ident)
    if doc is None and ident.isdigit() and int(ident) < len(events):
        doc = events[int(ident)]
    return doc if isinstance(doc, dict) else None


def _ingest_batches(
    store: Store,
    reader: Reader,
    batches: Iterator[Batch],
    fr: FileReport,
    report: IngestReport,
    problems: _Problems,
    *,
    key: str | None,
    tick: Callable[[int], None] | None = None,
    on_batch: Callable[[Batch], None] | None = None,
) -> FileReport:
    """Write each batch, then (when ``key``) commit its checkpoint: the one write-then-checkpoint loop."""
    shown = fr.path
    while True:
        try:
            batch = next(batches, None)
        except UNREADABLE as exc:
            fr.problems += problems.add([ReadProblem(shown, "file", "unreadable file", f"{type(exc).__name__}: {exc}")])
            break
        except Exception as exc:  # a reader bug on one file must not cost the other files
            fr.problems += problems.add([ReadProblem(shown, "file", f"reader failed: {type(exc).__name__}",
                                                     str(exc))])
            break
        if batch is None:
            break
        written = duplicates = 0
        if batch.events:
            result = store.write_events(batch.events)
            written, duplicates = result.written, result.duplicates
            if result.errors:
                # invalid for the mapping (the same on both stores): a problem, with the document
                by_id = {e.get("event.id"): e for e in batch.events if isinstance(e, dict)}
                fr.problems += problems.add(
                    ReadProblem(shown, f"event {eid}", "store refused event", why, _document(by_id, eid, batch.events))
                    for eid, why in result.errors)
        fr.problems += problems.add(batch.problems)
        if key is not None:
            # only now: the batch is in the store, so the checkpoint may move past it
            store.put_state(CHECKPOINT_KIND, key, {
                "checkpoint": batch.checkpoint, "reader": reader.name, "path": shown, "updated": to_iso(utcnow())})
        fr.events += len(batch.events)
        fr.written += written
        fr.duplicates += duplicates
        report.events += len(batch.events)
        report.written += written
        report.duplicates += duplicates
        if tick and batch.consumed is not None:
            tick(batch.consumed)
        if on_batch is not None:
            on_batch(batch)
    return fr
