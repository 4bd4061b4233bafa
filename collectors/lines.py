"""Line-oriented readers (syslog, journald JSON, ECS JSON lines) share one loop.

The loop owns what must be identical for every text source so that checkpoints and ids
line up: byte offsets (the checkpoint is ``{"offset", "line"}`` after the last line of a
batch), ``event.id`` = ``event_id(reader, file identity, byte offset)`` unless the parser
found a better one (journald's cursor), ``event.original``, ``log.file.path`` and
``ztsoc.log.offset``, truncation (a checkpoint past the end of the file restarts at 0) and,
for ``soc tail``, holding back a last line that has no newline yet (``follow=True``).

A file's identity is its first line (stable while the file grows, kept by a rotated, renamed
or gzipped copy), but two distinct files may begin with the same line (an rsyslogd start
line) or even the same 4 KiB. So every checkpoint also carries a *mark*: a hash of the
file's first 4 KiB and of the bytes just before the checkpoint offset (``mark_from`` up to
``offset``). ``matches(path, checkpoint)`` re-reads those bytes: the same file, grown or
rotated or compressed, still has them; another file with the same first line does not, and
the pipeline then gives it an identity of its own (``collectors.pipeline.resolve``) instead
of resuming it from the other file's offset and deduplicating its lines away.

Subclasses write ``parse(text, ctx)``: return a flat event (with ``@timestamp``), ``None``
to skip the line silently, or raise :class:`LineError` with a short reason. An event with
``ztsoc.auth.repeated: N`` (syslog's "message repeated N times") is stored N times, each
copy with its own id derived from the line's, so counting rules see every attempt.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from collectors.base import (
    MARK_BYTES,
    Batch,
    Checkpoint,
    Event,
    ReaderBase,
    ReadProblem,
    clip,
    content_mark,
    event_id,
    file_size,
    first_line_identity,
    id_prefix,
    is_gzip,
    mark_matches,
    open_log,
    read_head,
    where_raised,
)
from eventstore.timeutil import to_iso

#: copies made of one "message repeated N times" line, at most
MAX_REPEATS = 10_000
#: what a stream damaged part-way raises (a cut or corrupt .gz)
UNREADABLE_STREAM = (OSError, EOFError, zlib.error)
#: bytes of one line read at most; the rest of a longer line is skipped (counted as a problem)
MAX_LINE = 1 << 20


class BoundedLines:
    """The lines of a byte stream, none longer than ``limit`` bytes, in flat memory.

    ``readline(limit)`` gives the head of an overlong line; the rest is read in pieces of
    ``limit`` bytes and thrown away, and ``dropped`` says how many bytes that was, for the
    line just yielded (read it when ``len(line) >= limit``). A 1 GB line without a newline
    costs ``limit`` bytes of memory, not 1 GB. Hand-written: io gives the bounded
    ``readline`` but nothing that skips the rest of the line.
    """

    __slots__ = ("dropped", "fh", "first", "limit")

    def __init__(self, fh: BinaryIO, limit: int = MAX_LINE) -> None:
        self.fh = fh
        self.limit = limit
        self.dropped = 0
        self.first: bytes | None = None

    def head(self) -> bytes:
        """The first line, read now (a pipe's identity); the iteration still yields it first."""
        raw: bytes = self.fh.readline(self.limit)
        self.dropped = self._skip_rest() if len(raw) == self.limit and raw[-1] != 10 else 0
        self.first = raw
        return raw

    def _skip_rest(self) -> int:
        readline, limit, dropped = self.fh.readline, self.limit, 0
        while True:
            rest = readline(limit)
            dropped += len(rest)
            if not rest or rest[-1] == 10:
                return dropped

    def __iter__(self) -> Iterator[bytes]:
        if self.first:
            yield self.first
            self.dropped = 0
        self.first = None
        readline, limit = self.fh.readline, self.limit
        while True:
            raw = readline(limit)
            if not raw:
                return
            if len(raw) == limit and raw[-1] != 10:
                self.dropped = self._skip_rest()
                yield raw
                self.dropped = 0
            else:
                yield raw


#: lines remembered for the end part of the mark (fewer bytes when the lines are short)
_MARK_LINES = 64


def marked_checkpoint(path: Path, offset: int, line: int, tail: bytes | None = None) -> Checkpoint:
    """``{"offset", "line", "mark", "mark_from"}`` for ``path`` read up to ``offset``.

    ``tail``: the bytes just before ``offset`` when the caller has them (else read from the file).
    """
    if tail is None:
        with open_log(path) as fh:
            start = max(0, offset - MARK_BYTES)
            fh.seek(start)
            tail = fh.read(offset - start)
    tail = tail[-MARK_BYTES:]
    head = read_head(path, min(MARK_BYTES, offset))
    return {"offset": offset, "line": line, "mark": content_mark(head, tail), "mark_from": offset - len(tail)}


class LineError(ValueError):
    """A line that cannot be read; ``reason`` is counted, ``detail`` goes to the errors file."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


#: the years an ``@timestamp`` can have: ``to_iso`` writes four-digit years (year 999 would come out
#: as "999-...", which sorts and parses as no time at all)
FIRST_YEAR, LAST_YEAR = 1000, 9999


def utc_stamp(ts: datetime) -> str:
    """``@timestamp`` of a time read from a line (or a record): UTC, ``to_iso``'s format, or :class:`LineError`.

    The one place the readers turn a time into ``@timestamp``: a time that overflows on its way to
    UTC (``0001-01-01T00:00:00+01:00``) or lands outside four-digit years is the line's "bad
    timestamp", never a parser error that costs the line for a reason nobody can act on, nor a
    stored ``@timestamp`` no query can compare.
    """
    try:
        utc = ts.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise LineError("bad timestamp", f"{ts.isoformat()} is out of range once in UTC") from exc
    if not FIRST_YEAR <= utc.year <= LAST_YEAR:
        raise LineError("bad timestamp", f"{ts.isoformat()}: year {utc.year} is outside {FIRST_YEAR}-{LAST_YEAR}")
    return to_iso(utc)


def load_json(text: str) -> Any:
    """One line of JSON, or :class:`LineError` naming why not (the JSON readers' one ``json.loads``).

    Why not ``json.loads`` alone: besides ``JSONDecodeError`` it raises ``ValueError`` for an integer
    of more than 4,300 digits (Python's guard against quadratic conversion) and ``RecursionError``
    for nesting deeper than the stack; both are the line's fault, not the parser's.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError("invalid JSON", f"{exc.msg} at column {exc.colno}: {clip(text, 200)}") from exc
    except RecursionError as exc:  # json's C scanner recurses per [ or {: deeper than the stack allows
        raise LineError("nested too deep", clip(text, 200)) from exc
    except ValueError as exc:
        raise LineError("invalid JSON", f"{clip(str(exc), 120)}: {clip(text, 200)}") from exc


class LineReader(ReaderBase):
    name = "lines"
    #: keep ``event.original`` on each event (the raw line)
    keep_original = True
    #: events and parse state hold no reference cycles: the pipeline may pause the cyclic GC
    no_cycles = True
    #: bytes of a line read at most (the rest is skipped and counted as a problem)
    max_line = MAX_LINE
    #: a parsed "message repeated N times" (``ztsoc.auth.repeated``) is stored N times. Only for readers
    #: whose parser sets the field from the text it read: an ECS line that carries it is one stored event
    #: (often one of those N copies, exported), and copying it again would multiply it
    expands_repeats = True

    def __init__(self, *, follow: bool = False) -> None:
        self.follow = follow
        #: path read -> path shown (``soc tail`` reads a rotated file through ``/proc/self/fd/N``)
        self.labels: dict[str, str] = {}

    def identity(self, path: Path) -> str:
        return first_line_identity(path)

    def matches(self, path: Path, checkpoint: Checkpoint) -> bool:
        """Is ``path`` the file ``checkpoint`` was taken in (or a grown, rotated, gzipped copy)?"""
        return mark_matches(path, checkpoint, int(checkpoint.get("offset", 0)))

    def begin(self, path: Path | None) -> Any:
        """Per-file context handed to ``parse`` (e.g. the year RFC 3164 lines lack); ``None``: a pipe."""
        return None

    def parse(self, text: str, ctx: Any) -> Event | None:
        raise NotImplementedError

    def batches(self, path: Path, resume: Checkpoint | None, batch_size: int, *,
                identity: str | None = None) -> Iterator[Batch]:
        """``identity``: the one the pipeline resolved (``collectors.pipeline.resolve``), else the first line's."""
        identity = identity or self.identity(path)
        ctx = self.begin(path)
        source = self.labels.get(str(path), str(path))
        compressed = is_gzip(path)
        with open_log(path) as fh:
            offset = int(resume.get("offset", 0)) if resume else 0
            line_no = int(resume.get("line", 0)) if resume else 0
            if not compressed:  # offsets are in the decompressed stream; a .gz is never truncated in place
                fh.seek(0, 2)
                if offset > fh.tell():  # truncated in place: start again
                    offset = line_no = 0
            fh.seek(offset)
            batches = self.read_stream(BoundedLines(fh, self.max_line), source, identity, ctx, batch_size, offset,
                                       line_no, marked=path)
            if not compressed:
                yield from batches
                return
            held: Batch | None = None  # decompressed offsets say nothing of the file read: only the end does
            try:
                for batch in batches:
                    batch.consumed = None
                    if held is not None:
                        yield held
                    held = batch
            except UNREADABLE_STREAM:
                if held is not None:
                    yield held  # what was read before the damage is kept; the pipeline reports the rest
                raise
            if held is not None:
                held.consumed = file_size(path)
                yield held

    def stream_batches(self, stream: BinaryIO, batch_size: int, source: str = "-") -> Iterator[Batch]:
        """Batches from a pipe (``journalctl -o json | soc ingest journald -``).

        A pipe cannot be resumed, so there is no checkpoint to keep; the identity is the
        hash of the first line, so piping the same text again yields the same ids.
        """
        lines = BoundedLines(stream, self.max_line)
        identity = hashlib.sha1(lines.head()).hexdigest()
        return self.read_stream(lines, source, identity, self.begin(None), batch_size, 0, 0)

    def read_stream(self, lines: BoundedLines, source: str, identity: str, ctx: Any, batch_size: int,
                    offset: int, line_no: int, *, marked: Path | None = None) -> Iterator[Batch]:
        """The loop itself: ``lines`` yields raw lines starting at byte ``offset`` (line ``line_no``).

        ``marked``: the file the lines come from; its checkpoints then carry a mark (a pipe has none).
        It is also the boundary of every line reader: whatever a parser raises stays with its
        line (a counted problem naming the line, the exception and where it was raised).
        """
        limit = lines.limit
        name, keep_original, follow, parse = self.name, self.keep_original, self.follow, self.parse
        expands_repeats = self.expands_repeats
        recent: deque[bytes] = deque(maxlen=_MARK_LINES)
        remember = recent.append

        def checkpoint() -> Checkpoint:
            if marked is None:
                return {"offset": offset, "line": line_no}
            return marked_checkpoint(marked, offset, line_no, b"".join(recent) if recent else None)
        prefix, sha1 = id_prefix(name, identity), hashlib.sha1  # event_id(name, identity, offset), inlined
        events: list[Event] = []
        problems: list[ReadProblem] = []
        start = offset
        failure: BaseException | None = None
        try:
            for raw in lines:
                dropped = lines.dropped if len(raw) >= limit else 0
                if follow and not dropped and not raw.endswith(b"\n"):
                    break  # the writer is mid-line: read it on the next poll
                here = offset
                offset += len(raw) + dropped
                line_no += 1
                if dropped:
                    recent.clear()  # the mark's tail must be the bytes just before the offset: reread them
                    problems.append(ReadProblem(source, f"line {line_no} (byte {here})", "line too long",
                                                f"{len(raw) + dropped} bytes: the first {limit} read, the rest skipped"))
                else:
                    remember(raw)
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not text or text.isspace():
                    continue
                try:
                    event = parse(text, ctx)
                except LineError as exc:
                    problems.append(ReadProblem(source, f"line {line_no} (byte {here})", exc.reason,
                                                clip(exc.detail or text)))
                    event = None
                except RecursionError:
                    problems.append(ReadProblem(source, f"line {line_no} (byte {here})", "nested too deep",
                                                clip(text, 200)))
                    event = None
                except Exception as exc:  # the boundary: a parser bug costs this line only
                    problems.append(ReadProblem(source, f"line {line_no} (byte {here})",
                                                f"parser error: {type(exc).__name__}", f"{clip(str(exc), 200)} "
                                                f"(in {where_raised(exc)}): {clip(text, 200)}"))
                    event = None
                if event is not None:
                    if "event.id" not in event:
                        event["event.id"] = sha1(prefix + b"%d" % here).hexdigest()
                    if keep_original:
                        event["event.original"] = text
                    if "log.file.path" not in event:  # an ECS line may name its own origin: keep it
                        event["log.file.path"] = source
                        event["ztsoc.log.offset"] = here
                    events.append(event)
                    repeats = event.get("ztsoc.auth.repeated") if expands_repeats else None
                    if repeats.__class__ is int and repeats > 1:
                        # "message repeated 5 times: [...]" stands for five events: a brute-force
                        # count must see five; the copies get ids of their own at the same line
                        base_id = event["event.id"]
                        events.extend({**event, "event.id": event_id(name, base_id, k)}
                                      for k in range(1, min(repeats, MAX_REPEATS)))
                if len(events) + len(problems) >= batch_size:
                    yield Batch(events, problems, checkpoint(), offset)
                    events, problems, start = [], [], offset
        except UNREADABLE_STREAM as exc:  # a damaged .gz part-way: keep what came before, then say so
            failure = exc
        if offset != start or events or problems:
            yield Batch(events, problems, checkpoint(), offset)
        if failure is not None:
            raise failure
