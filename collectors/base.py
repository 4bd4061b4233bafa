"""The contract between a reader (one kind of source) and the ingest pipeline.

A reader turns ONE file into a stream of :class:`Batch` es. It never touches the store:
the pipeline (``collectors.pipeline.ingest``) writes each batch and only then records the
batch's ``checkpoint``, so after a crash or ``kill -9`` the next run resumes from the last
committed batch, and the few events read again get the same ``event.id`` (derived from
the source identity and the position, see :func:`event_id`) and are stored once.

Contract for reader authors (syslog, journald, evtx, jsonl here; pcap in ``collectors/pcap``):

- ``name``: the registry key (``"syslog"``, ``"pcap"``...), also the prefix of the
  checkpoint key and of every ``event.id`` the reader makes.
- ``identity(path) -> str``: what makes this file this file, independent of its path,
  so a renamed (rotated) file keeps its checkpoint and a new file at the same path gets a
  fresh one. Default (:class:`ReaderBase`): a hash of the first 4 KiB. Growing text files
  use :func:`first_line_identity` (stable once the first line is complete); as distinct
  files may share a first line, they are ``VerifyingReader`` s: each checkpoint carries a
  mark of the content it covers, checked before resuming (``collectors.lines``).
- ``batches(path, resume, batch_size)``: yield batches of at most ``batch_size`` events
  (a batch may be empty but carry problems and a checkpoint). ``resume`` is the
  ``checkpoint`` of the last committed batch for this identity, or ``None``: skip
  everything up to it. Each event is a FLAT dict keyed by ECS dotted names and must have
  ``event.id`` and ``@timestamp`` (ISO 8601 UTC, ``eventstore.timeutil.to_iso``).
  ``Batch.consumed`` is how many bytes of the file are behind this batch (for progress bars).
- A record that cannot be read becomes a :class:`ReadProblem` (reason: a SHORT stable
  phrase, e.g. ``"no syslog header"``, ``"truncated packet"``; details go in ``raw``) and
  reading goes on. Only a file that cannot be opened at all may raise ``OSError`` /
  ``ValueError``; the pipeline turns that into one problem for that file and continues.

Testing a reader needs no store: :func:`read_all` runs it over a file (optionally resumed)
and returns every event and problem, and :func:`read_resumed` replays a run interrupted
after each batch, to prove the checkpoints line up.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

Event = dict[str, Any]
Checkpoint = dict[str, Any]

#: How many bytes the default identity hashes.
IDENTITY_BYTES = 4096


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """One line, packet or record that could not be read."""

    source: str  # the file path (or "iface:eth0"...)
    position: str  # "line 12 (byte 3456)", "packet 77", "record 9"
    reason: str  # short and stable: problems are counted per reason
    raw: str | None = None  # the offending text (truncated), or a detail
    #: the whole event the store refused as invalid (in the errors file: nothing vanishes)
    document: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "position": self.position, "reason": self.reason,
                               "raw": self.raw}
        if self.document is not None:
            out["document"] = self.document
        return out


@dataclass(slots=True)
class Batch:
    events: list[Event]
    problems: list[ReadProblem]
    #: the resume point AFTER this batch, e.g. {"offset": 12345, "line": 300}
    checkpoint: Checkpoint
    #: bytes of the file behind this batch (progress); None when unknown
    consumed: int | None = None


@runtime_checkable
class Reader(Protocol):
    name: str

    def identity(self, path: Path) -> str: ...

    def batches(self, path: Path, resume: Checkpoint | None, batch_size: int) -> Iterator[Batch]: ...


@runtime_checkable
class VerifyingReader(Reader, Protocol):
    """A reader whose identity may be shared by distinct files (the line readers: the first
    line), so it can tell whether ``path`` is the file a checkpoint was taken in, and read a
    file under the identity the pipeline resolved for it (``collectors.pipeline.resolve``)."""

    def matches(self, path: Path, checkpoint: Checkpoint) -> bool: ...

    def batches(self, path: Path, resume: Checkpoint | None, batch_size: int, *,
                identity: str | None = None) -> Iterator[Batch]: ...


@runtime_checkable
class StreamReader(Reader, Protocol):
    """A reader that can also read a pipe (no checkpoint: ids come from the content)."""

    def stream_batches(self, stream: BinaryIO, batch_size: int, source: str = "-") -> Iterator[Batch]: ...


class ReaderBase:
    """Default ``identity`` for binary files; subclass it and write ``batches``."""

    name: str = "base"
    #: every event is flat (no value is an object): the matcher skips checking each value's type
    flat_events: bool = False

    def identity(self, path: Path) -> str:
        return head_identity(path)

    def batches(self, path: Path, resume: Checkpoint | None, batch_size: int) -> Iterator[Batch]:
        raise NotImplementedError


# -- identity and ids ---------------------------------------------------------------------


def head_identity(path: Path, nbytes: int = IDENTITY_BYTES) -> str:
    """SHA-1 of the first ``nbytes`` bytes: same content, same identity, wherever it lies."""
    with open(path, "rb") as fh:
        head = fh.read(nbytes)
    return hashlib.sha1(head).hexdigest()


def first_line_identity(path: Path, nbytes: int = IDENTITY_BYTES) -> str:
    """SHA-1 of the first line (at most ``nbytes``): stable while a log file grows.

    A rotated file keeps its first line, so its checkpoint follows it to ``auth.log.1``;
    the new ``auth.log`` starts with another line and so gets a fresh checkpoint.
    """
    with open_log(path) as fh:
        head = fh.read(nbytes)
    end = head.find(b"\n")
    return hashlib.sha1(head if end < 0 else head[: end + 1]).hexdigest()


#: bytes of a file's head, and of the piece a checkpoint names, that a checkpoint's mark hashes
MARK_BYTES = 4096


def content_mark(head: bytes, tail: bytes) -> str:
    """The mark of a checkpoint: the file's first bytes and a piece of what it covers (``mark_from``..)."""
    return hashlib.sha1(b"%d:" % len(head) + head + tail).hexdigest()


def read_head(path: Path, nbytes: int = MARK_BYTES) -> bytes:
    """The first ``nbytes`` of the file, decompressed when it is gzip."""
    with open_log(path) as fh:
        return fh.read(nbytes)


def mark_matches(path: Path, checkpoint: Checkpoint, until: int) -> bool:
    """Does ``path`` hold the bytes ``checkpoint``'s mark was made of (its head and ``mark_from``..``until``)?

    The one check of every reader whose identity distinct files may share (``VerifyingReader``):
    the line readers (``until`` is the checkpoint's offset) and pcap (a window of what it read).
    A checkpoint written before marks existed has none and is trusted, as it was then. Offsets are
    in the decompressed bytes, so a gzipped copy matches; checking it decompresses up to ``until``.
    """
    mark = checkpoint.get("mark")
    if mark is None:
        return True
    since = int(checkpoint.get("mark_from", until))
    if not 0 <= since <= until:
        return False
    nhead = min(MARK_BYTES, until)
    with open_log(path) as fh:
        head = fh.read(nhead)
        fh.seek(since)
        tail = fh.read(until - since)
    return len(head) == nhead and len(tail) == until - since and content_mark(head, tail) == mark


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_log(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it is gzip (``auth.log.2.gz`` after logrotate).

    The first line, hence the identity, is the same compressed or not: a log that was
    read as ``auth.log.1`` and is later compressed keeps its checkpoint.
    """
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def event_id(reader: str, identity: str, position: int | str) -> str:
    """Deterministic id: reading the same record again yields the same id, never a random one."""
    return hashlib.sha1(f"{reader}:{identity}:{position}".encode()).hexdigest()


def id_prefix(reader: str, identity: str) -> bytes:
    """What ``event_id`` hashes before the position, for loops that make one id per record:
    ``sha1(id_prefix(r, i) + b"%d" % n).hexdigest() == event_id(r, i, n)`` for an int ``n``,
    without formatting and encoding the whole key again for every record."""
    return f"{reader}:{identity}:".encode()


def file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


#: digits of a process id stored as ``process.pid`` (a long), at most: any 18-digit number fits
MAX_PID_DIGITS = 18


def pid_number(pid: str | int) -> int | None:
    """The number a ``*.pid`` field (a long) gets for a process id read from a file, or ``None`` when
    it is no number a long holds: the readers' one conversion of a pid.

    Why: the id is the writer's text (``logger --id``, a forged line, a crafted EVTX attribute):
    5,000 digits made ``int`` raise (the line lost as a "parser error", the record as a "bad
    record"), 20 digits made the stores refuse the whole event (out of the 64-bit range). Callers
    keep the text where they have a text field for it (``log.syslog.procid``). ``isdecimal``, not
    ``isdigit``: that is also true of "²", which ``int`` refuses.
    """
    text = str(pid)
    return int(text) if len(text) <= MAX_PID_DIGITS and text.isdecimal() else None


def clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def where_raised(exc: BaseException) -> str:
    """``file.py:LINE function`` of the innermost frame of an exception: where a problem came from."""
    tb = exc.__traceback__
    where = "?"
    while tb is not None:
        code = tb.tb_frame.f_code
        where = f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} {code.co_name}"
        tb = tb.tb_next
    return where


# -- store-free helpers for tests -----------------------------------------------------------


@dataclass(slots=True)
class ReadResult:
    events: list[Event] = field(default_factory=list)
    problems: list[ReadProblem] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    batches: int = 0


def read_all(reader: Reader, path: Path, resume: Checkpoint | None = None, batch_size: int = 1000) -> ReadResult:
    """Everything a reader yields for a file, without a store."""
    out = ReadResult(checkpoint=resume)
    for batch in reader.batches(Path(path), resume, batch_size):
        out.events.extend(batch.events)
        out.problems.extend(batch.problems)
        out.checkpoint = batch.checkpoint
        out.batches += 1
    return out


def read_resumed(reader: Reader, path: Path, batch_size: int) -> ReadResult:
    """Read one batch at a time, restarting the reader from each checkpoint.

    What a crash after every batch would look like: the result must equal ``read_all``.
    """
    out = ReadResult()
    while True:
        it = reader.batches(Path(path), out.checkpoint, batch_size)
        batch = next(it, None)
        if batch is None:
            return out
        out.events.extend(batch.events)
        out.problems.extend(batch.problems)
        if batch.checkpoint == out.checkpoint and not batch.events and not batch.problems:
            return out
        out.checkpoint = batch.checkpoint
        out.batches += 1
