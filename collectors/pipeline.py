"""Ship a reader's batches into the store: never lose, never repeat.

``ingest(store, reader, paths)`` is the one loop every ``soc ingest <reader>`` (and
``soc tail``) runs. For each file it

1. computes the reader's ``identity(path)`` (content, not path: a rotated file keeps its
   checkpoint) and loads the checkpoint ``"<reader>:<identity>"`` (kind ``checkpoint``;
   read for a window of files at a time in one request); when that checkpoint was taken in
   another file with the same identity (``resolve``: the line readers' first line), the
   file gets the next identity of that lineage instead;
2. asks the reader for batches from there;
3. hands each batch to the writer (``_Writer``), which writes the batches of many files
   together (``store.write_batches``, as they are read, up to ``batch_size`` events) and
   only THEN stores their checkpoints, all in one ``store.put_states``.

A ``kill -9`` between 3's two steps makes the next run read those batches again; their
events carry the same ``event.id`` so the store keeps them once (counted as
``duplicates``). Nothing is lost because a checkpoint never runs ahead of the data.

Problems (unreadable lines, packets, records; files that cannot be opened; events the
mapping refuses, written with the whole document) are counted per reason, optionally
streamed to ``errors_file`` as JSON lines, and never stop the run. A store that refuses
writes for a reason that is not the event's (a write block, a full disk, a node busy after
every retry: ``StoreRefused``) stops the ingest before that batch's checkpoint (the other
files written with it move when all of theirs was stored), so the same command run again,
once the cause is fixed, stores what was refused. A path that does not exist is a usage error (``ValueError``)
raised before anything is read.

``-`` among the paths reads standard input with readers that can (``StreamReader``: the
line readers); a pipe cannot be resumed, so it has no checkpoint, and its ids come from
its content (the hash of its first line + byte offset; journald's own cursor).

Plugins (e.g. the pcap reader) need nothing beyond ``collectors.base``: register the
reader in ``collectors.registry.READERS`` and this pipeline and the CLI pick it up.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from collectors.base import Batch, Checkpoint, Reader, ReadProblem, StreamReader, VerifyingReader, file_size
from eventstore.errors import StoreError, StoreRefused
from eventstore.gc_pause import gc_paused
from eventstore.store import Doc, Store, WriteResult
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


def resolve(store: Store, reader: Reader, path: Path, *, base: str | None = None,
            lookup: Callable[[str], Doc | None] | None = None) -> Resolved:
    """The identity ``path`` is read under and its checkpoint.

    The reader's ``identity`` first. A ``VerifyingReader`` (the line readers) may find that the
    checkpoint under it was taken in another file that merely begins the same way; then the
    next identities of that lineage (``sha1("<identity>/<n>")``) are tried in order, and the
    first free one starts the file from its beginning. Event ids follow the resolved identity,
    so two such files never share an id. The first file of a lineage keeps the plain identity:
    checkpoints and ids from before this check stay valid.

    ``base``: the reader's identity when already computed; ``lookup``: where checkpoints are
    read (``ingest`` reads a window of files' checkpoints in one request), default the store.
    """
    get = lookup or (lambda key: store.get_state(CHECKPOINT_KIND, key))
    base = base if base is not None else reader.identity(path)
    if not isinstance(reader, VerifyingReader):
        saved = get(checkpoint_key(reader, base))
        return Resolved(base, checkpoint_key(reader, base), saved.get("checkpoint") if saved else None,
                        saved.get("path") if saved else None)
    for n in range(MAX_LINEAGE):
        identity = base if n == 0 else hashlib.sha1(f"{base}/{n}".encode()).hexdigest()
        key = checkpoint_key(reader, identity)
        saved = get(key)
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


#: the path that means "standard input" (``journalctl -o json | soc ingest journald -``)
STDIN = "-"


#: files whose identities are computed and checkpoints read (one request) ahead of reading them,
#: and at most so many bytes of them (a whole-file identity reads the file: a window of large
#: files would leave the page cache before they are parsed)
LOOKAHEAD = 256
LOOKAHEAD_BYTES = 64 << 20
#: pieces (one batch of one file) written together at most, however few events they hold
MAX_PIECES = 1000


@dataclass(slots=True)
class _Piece:
    """One batch of one file, written together with other files' batches."""

    fr: FileReport
    key: str | None  # its checkpoint's key; None: no checkpoint (standard input, a file's last word)
    batch: Batch
    tick: Callable[[int], None] | None = None
    #: the checkpoint key of the reader's own identity (``key`` may be a later one of its lineage)
    base: str | None = None


#: in a stream of pieces: write the pieces before it first (the next file is a copy of one of them)
_FLUSH = None


class _Writer:
    """Batches of many files written together, then their checkpoints in one request.

    Small files (277 EVTX samples of ~30 records each) cost a bulk request and a checkpoint
    request each when written one by one: the node's round trips, not the events, took the
    time. Here the pieces of a group go to one ``Store.write_batches`` as they are read (the
    node indexes while the next files are parsed) until the group holds ``max_events`` (the
    ``--batch-size``; memory stays bounded: a group holds less than that plus one batch, and
    at most ``MAX_PIECES`` batches); once the store has acknowledged them, their
    checkpoints go in one ``put_states``. Per file the rule is the one it always was: a
    checkpoint moves only past events the store holds. When the store refuses some
    (``StoreRefused``), the files whose pieces were stored whole still move, a file with a
    refused piece stops before it (its later pieces too), and the refusal goes up.

    ``pending`` holds the checkpoint keys (and those of the readers' own identities) of the
    group being written: a file with the same identity as one of them (a copy, a rotated file)
    must see that one's checkpoint, so its pieces' stream says ``_FLUSH`` first. ``saved`` is
    what this run checkpointed, newer than any checkpoint read ahead.
    """

    def __init__(self, store: Store, reader: Reader, report: IngestReport, problems: _Problems, *,
                 max_events: int, on_batch: Callable[[Batch], None] | None = None) -> None:
        self.store, self.reader, self.report, self.problems = store, reader, report, problems
        self.max_events = max_events
        self.on_batch = on_batch
        self.pending: set[str] = set()
        self.saved: dict[str, Doc] = {}

    def write(self, pieces: Iterable[_Piece | None]) -> None:
        source = iter(pieces)
        while True:
            first = next((p for p in source if p is not _FLUSH), None)
            if first is None:
                return
            group: list[_Piece] = []

            def feed(first: _Piece = first, group: list[_Piece] = group) -> Iterator[list[Any]]:
                piece: _Piece | None = first
                size = 0
                while piece is not None:
                    group.append(piece)
                    self.pending.update(k for k in (piece.key, piece.base) if k is not None)
                    yield piece.batch.events
                    size += len(piece.batch.events) + len(piece.batch.problems)
                    if size >= self.max_events or len(group) >= MAX_PIECES:
                        return
                    piece = next(source, _FLUSH)

            try:
                results: Sequence[WriteResult | None] = self.store.write_batches(feed())
            except StoreRefused as exc:
                # the files stored whole move; if even that is refused (a block on every index),
                # they stay where they were (read again next run: duplicates, nothing lost)
                with contextlib.suppress(StoreError):
                    self._commit(group, exc.results)
                raise
            finally:
                self.pending.clear()
            self._commit(group, results)

    def _commit(self, pieces: list[_Piece], results: Sequence[WriteResult | None]) -> None:
        """Report the stored pieces' problems, then move their checkpoints (one request), then count."""
        stopped: set[int] = set()  # files (by id of their report) with a piece not stored
        stored: list[tuple[_Piece, WriteResult]] = []
        for i, piece in enumerate(pieces):
            result = results[i] if i < len(results) else None
            if result is None or id(piece.fr) in stopped:
                stopped.add(id(piece.fr))
                continue
            stored.append((piece, result))
        checkpoints: dict[str, Doc] = {}
        for piece, result in stored:
            fr, batch = piece.fr, piece.batch
            if result.errors:
                # invalid for the mapping (the same on both stores): a problem, with the document
                by_id = {e.get("event.id"): e for e in batch.events if isinstance(e, dict)}
                fr.problems += self.problems.add(
                    ReadProblem(fr.path, f"event {eid}", "store refused event", why,
                                _document(by_id, eid, batch.events))
                    for eid, why in result.errors)
            fr.problems += self.problems.add(batch.problems)
            if piece.key is not None:
                checkpoints[piece.key] = {"checkpoint": batch.checkpoint, "reader": self.reader.name,
                                          "path": fr.path, "updated": to_iso(utcnow())}
        if checkpoints:
            # only now: every event they cover is in the store, so the checkpoints may move past them
            self.store.put_states(CHECKPOINT_KIND, checkpoints)
            self.saved.update(checkpoints)
        report = self.report
        for piece, result in stored:
            fr, batch = piece.fr, piece.batch
            fr.events += len(batch.events)
            fr.written += result.written
            fr.duplicates += result.duplicates
            report.events += len(batch.events)
            report.written += result.written
            report.duplicates += result.duplicates
            if piece.tick and batch.consumed is not None:
                piece.tick(batch.consumed)
            if self.on_batch is not None:
                self.on_batch(batch)


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

    Files are written together (``_Writer``) and their checkpoints read a window of files at a
    time (``LOOKAHEAD``, ``LOOKAHEAD_BYTES``): a folder of small files costs a few requests,
    not a few per file.
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
            writer = _Writer(store, reader, report, _Problems(report, sink), max_events=batch_size)
            copies: list[tuple[FileReport, str]] = []  # files whose checkpoint was taken in another file

            def pieces() -> Iterator[_Piece | None]:
                ahead: dict[str, Doc | None] = {}  # checkpoints read ahead, by key (None: none stored)

                def lookup(key: str) -> Doc | None:
                    if key in writer.saved:
                        return writer.saved[key]
                    return ahead[key] if key in ahead else store.get_state(CHECKPOINT_KIND, key)

                done_before = 0
                window_end = 0
                for index, path in enumerate(files):
                    if index == window_end:
                        window_end = index + 1
                        budget = sizes[index]
                        while (window_end < len(files) and window_end - index < LOOKAHEAD
                               and budget + sizes[window_end] <= LOOKAHEAD_BYTES):
                            budget += sizes[window_end]
                            window_end += 1
                        ahead = _read_ahead(store, reader, files[index:window_end])
                    if progress:
                        progress(ProgressTick(path, index, len(files), done_before, total, report.events))

                    def tick(consumed: int, path: Path = path, index: int = index, base: int = done_before) -> None:
                        if progress:
                            progress(ProgressTick(path, index, len(files), base + consumed, total, report.events))

                    if str(path) == STDIN and isinstance(reader, StreamReader):
                        stream = stdin if stdin is not None else sys.stdin.buffer
                        fr = FileReport("<stdin>", None)
                        report.files.append(fr)
                        yield from _read_pieces(reader.stream_batches(stream, batch_size), fr, key=None)
                    else:
                        fr = FileReport(str(path), None)
                        report.files.append(fr)
                        seen_as = yield from _file_pieces(store, reader, path, fr, writer, lookup,
                                                          batch_size=batch_size, tick=tick)
                        if seen_as and seen_as != fr.path:
                            copies.append((fr, seen_as))
                    done_before += sizes[index]
                    if progress:
                        progress(ProgressTick(path, index, len(files), done_before, total, report.events))

            writer.write(pieces())
            for fr, seen_as in copies:
                if fr.written == 0 and fr.duplicates == fr.events:
                    fr.duplicate_of = seen_as  # a copy of a file already stored: say so, not "resumed, 0 events"
        # read your writes: when the command returns, the next one (any process) sees the events
        store.refresh()
    finally:
        if sink is not None:
            sink.close()
    report.elapsed = time.perf_counter() - started
    return report


def _read_ahead(store: Store, reader: Reader, paths: Sequence[Path]) -> dict[str, Doc | None]:
    """The stored checkpoints of these files' identities, in one request (a file that cannot be
    read is left out: reading it later reports it)."""
    keys: list[str] = []
    for path in paths:
        if str(path) == STDIN:
            continue
        try:
            keys.append(checkpoint_key(reader, reader.identity(path)))
        except UNREADABLE:
            continue
    if not keys:
        return {}
    found = store.get_states(CHECKPOINT_KIND, keys)
    return {key: found.get(key) for key in keys}


def _file_pieces(
    store: Store,
    reader: Reader,
    path: Path,
    fr: FileReport,
    writer: _Writer,
    lookup: Callable[[str], Doc | None] | None = None,
    *,
    batch_size: int,
    tick: Callable[[int], None] | None = None,
) -> Generator[_Piece | None, None, str | None]:
    """Resolve one file's identity and checkpoint (filling ``fr``), then its pieces; returns the
    file its checkpoint was taken in. ``fr``'s counts are complete once the writer is done."""
    try:
        base = reader.identity(path)
        if checkpoint_key(reader, base) in writer.pending:
            yield _FLUSH  # a copy of a file being written: it must see that file's checkpoint
        found = resolve(store, reader, path, base=base, lookup=lookup)
    except UNREADABLE as exc:
        yield _Piece(fr, None, Batch([], [ReadProblem(fr.path, "file", "unreadable file",
                                                      f"{type(exc).__name__}: {exc}")], {}))
        return None
    fr.identity, fr.resumed = found.identity, found.resume is not None
    batches = (reader.batches(path, found.resume, batch_size, identity=found.identity)
               if isinstance(reader, VerifyingReader) else reader.batches(path, found.resume, batch_size))
    yield from _read_pieces(batches, fr, key=found.key, base=checkpoint_key(reader, base), tick=tick)
    return found.seen_as


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
    """One file on its own (``soc tail``'s polls): each batch written, then its checkpoint.

    ``on_batch`` sees each batch once it is committed (``soc tail`` prints its events);
    ``label`` is the path to show when ``path`` is a ``/proc/self/fd/N`` alias.
    """
    writer = _Writer(store, reader, report, problems or _Problems(report, None), max_events=0, on_batch=on_batch)
    done = FileReport(label or str(path), None)
    found: list[str | None] = []

    def pieces() -> Iterator[_Piece | None]:
        found.append((yield from _file_pieces(store, reader, path, done, writer, batch_size=batch_size, tick=tick)))

    writer.write(pieces())
    seen_as = found[0] if found else None
    if seen_as and seen_as != done.path and done.written == 0 and done.duplicates == done.events:
        done.duplicate_of = seen_as  # a copy of a file already stored: say so, not "resumed, 0 events"
    return done


def _document(by_id: dict[Any, Any], ident: str, events: list[Any]) -> dict[str, Any] | None:
    """The refused event, named by its ``event.id`` or, lacking one, its position in the batch."""
    doc = by_id.get(ident)
    if doc is None and ident.isdigit() and int(ident) < len(events):
        doc = events[int(ident)]
    return doc if isinstance(doc, dict) else None


def _read_pieces(
    batches: Iterator[Batch],
    fr: FileReport,
    *,
    key: str | None,
    base: str | None = None,
    tick: Callable[[int], None] | None = None,
) -> Iterator[_Piece]:
    """Each batch as a piece (written, then checkpointed under ``key``); a file the reader cannot
    go on with ends with that problem, reported after its batches."""
    while True:
        try:
            batch = next(batches, None)
        except UNREADABLE as exc:
            problem = ReadProblem(fr.path, "file", "unreadable file", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a reader bug on one file must not cost the other files
            problem = ReadProblem(fr.path, "file", f"reader failed: {type(exc).__name__}", str(exc))
        else:
            if batch is None:
                return
            yield _Piece(fr, key, batch, tick, base)
            continue
        yield _Piece(fr, None, Batch([], [problem], {}))
        return
