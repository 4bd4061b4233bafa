"""``soc ingest pcap``: a capture file into ``network.*`` events, resumable batch by batch.

The reader (:mod:`collectors.pcap.reader`) and the flow meter (:mod:`collectors.pcap.flows`)
do the work; this module fits them to the ingest contract of :mod:`collectors.base`.

Resuming: a flow's event exists only once the flow ends, so a checkpoint cannot simply be
"the next packet". It is two packet indices: ``start``, the first packet of the oldest
flow still open after the batch (re-reading from there rebuilds every open flow), and
``next``, the packet after the batch. A resumed read decodes from ``start`` but drops
every event and problem produced before ``next``: those were committed with the batch.
The ids do not depend on where reading started, so whatever is read twice is stored once.

Identity: the first 4 KiB of the decompressed capture (a .gz copy is the same capture). Two
distinct captures may share them (the same header and first packets), so every checkpoint
also carries the capture's size (:func:`capture_size`: a capture file does not grow once
written) and a mark (:func:`collectors.base.mark_matches`, the check the line readers use):
a hash of the head and of the last bytes read, the file's end once it is done.
``collectors.pipeline.resolve`` gives a capture that does not match an identity of its own,
instead of skipping it as "done" or resuming it from the other's packets. Checking reads the
4 KiB windows (a .gz is decompressed up to the window: a rerun of a done .gz reads it once more).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from collectors.base import (
    IDENTITY_BYTES,
    MARK_BYTES,
    Batch,
    Checkpoint,
    Event,
    ReaderBase,
    ReadProblem,
    content_mark,
    id_prefix,
    mark_matches,
    read_head,
)
from collectors.pcap.flows import FlowMeter, MeterConfig, relaxed_gc
from collectors.pcap.reader import GZIP_MAGIC, CaptureInfo, Problem, Record, iter_records, open_capture


def capture_identity(path: Path | str) -> str:
    """SHA-1 of the first 4 KiB of the DECOMPRESSED capture: plain and .gz copies share ids."""
    with open_capture(path) as fh:
        return hashlib.sha1(fh.read(IDENTITY_BYTES)).hexdigest()


def capture_size(path: Path | str) -> int:
    """The decompressed size of a capture modulo 2**32, without reading it: a plain file's size, a
    gzip file's ISIZE trailer (its last member's: a multi-member .gz then differs from its plain copy,
    which is read again under an identity of its own, never skipped)."""
    with open(path, "rb") as fh:
        if fh.read(2) != GZIP_MAGIC:
            return os.fstat(fh.fileno()).st_size % (1 << 32)
        fh.seek(0, os.SEEK_END)
        if fh.tell() < 20:
            return -1
        fh.seek(-4, os.SEEK_END)
        return int.from_bytes(fh.read(4), "little")


def _position(fh: BinaryIO) -> int:
    raw = fh.fileobj if isinstance(fh, gzip.GzipFile) else fh
    try:
        return int(raw.tell())  # type: ignore[union-attr]
    except (OSError, ValueError, AttributeError):
        return 0


def _until(records: Iterator[Record], limit: int, held: list[Record]) -> Iterator[Record]:
    """Records before index ``limit``; the first one at or past it is put in ``held``."""
    for rec in records:
        if rec[0] >= limit:
            held.append(rec)
            return
        yield rec


def _failure_reason(exc: BaseException) -> str:
    """The problem reason of a capture that fails part-way: a damaged file, or a reader bug."""
    if isinstance(exc, (OSError, EOFError, zlib.error, ValueError)):  # ValueError: a header cut short
        return "unreadable file"
    return f"reader failed: {type(exc).__name__}"


def _pieces(chunks: Iterable[list[Event]], take_problems: Callable[[], list[ReadProblem]], checkpoint: Checkpoint,
            consumed: int | None, committed: Checkpoint, batch_size: int, skip: int,
            mark: Callable[[], Checkpoint]) -> Iterator[Batch]:
    """One logical batch (its events made chunk by chunk) as batches of at most ``batch_size``.

    One packet can end thousands of flows (a full table's eviction) and the end of a capture
    ends them all: they are stored ``batch_size`` at a time, never all in memory. Every
    piece but the last carries the checkpoint already committed plus ``skip``, the events of
    this logical batch stored so far: a resumed read re-meters to the same point, makes the
    same events again and drops that many. ``skip`` given here is the resumed checkpoint's.
    ``mark``: the mark of the bytes read so far, which every checkpoint carries.
    """
    pending: list[Event] = []
    to_drop, done = skip, skip
    for chunk in chunks:
        if to_drop:
            dropped = min(to_drop, len(chunk))
            chunk, to_drop = chunk[dropped:], to_drop - dropped
        pending.extend(chunk)
        while len(pending) > batch_size:
            done += batch_size
            yield Batch(pending[:batch_size], take_problems(), {**committed, "skip": done, **mark()}, None)
            del pending[:batch_size]
    yield Batch(pending, take_problems(), {**checkpoint, **mark()}, consumed)


class PcapReader(ReaderBase):
    """pcap / pcapng (plain or gzip) into network.flow, dns, http, tls and icmp events."""

    name = "pcap"
    patterns = ("*.pcap", "*.pcapng", "*.cap", "*.pcap.gz", "*.pcapng.gz", "*.cap.gz")

    def __init__(self, idle_timeout: float | None = None, active_timeout: float | None = None,
                 no_apps: bool | None = None, max_flows: int | None = None) -> None:
        config = MeterConfig()
        if idle_timeout is not None:
            config.idle_timeout = idle_timeout
        if active_timeout is not None:
            config.active_timeout = active_timeout
        if no_apps:
            config.decode_apps = False
        if max_flows is not None:
            if max_flows < 1:
                raise ValueError("--max-flows must be at least 1")
            config.max_flows = max_flows
        self.config = config
        #: the last file's meter statistics (fragments, non-IP frames...), for reports and benches
        self.last_meter: FlowMeter | None = None

    def identity(self, path: Path) -> str:
        return capture_identity(path)

    def matches(self, path: Path, checkpoint: Checkpoint) -> bool:
        """Is ``path`` the capture ``checkpoint`` was taken in (or a copy, plain or gzip)?"""
        size = checkpoint.get("size")
        if size is not None and size != capture_size(path):
            return False
        return mark_matches(path, checkpoint, int(checkpoint.get("mark_to", 0)))

    def batches(self, path: Path, resume: Checkpoint | None, batch_size: int, *,
                identity: str | None = None) -> Iterator[Batch]:
        """``identity``: the one the pipeline resolved (``collectors.pipeline.resolve``), else :meth:`identity`."""
        if resume and resume.get("done"):
            return
        start = int(resume.get("start", 0)) if resume else 0
        skip_until = int(resume.get("next", 0)) if resume else 0
        head = read_head(path, MARK_BYTES)
        size = capture_size(path)
        ident = identity or self.identity(path)
        source = str(path)
        prefix = id_prefix(self.name, ident)
        sha1 = hashlib.sha1

        def make_id(position: str) -> str:  # event_id(self.name, ident, position), without re-encoding the prefix
            return sha1(prefix + position.encode()).hexdigest()

        meter = FlowMeter(make_id, self.config, source)
        self.last_meter = meter
        rec_problems: list[Problem] = []
        info = CaptureInfo()
        with open_capture(path) as fh, relaxed_gc():
            records = iter_records(fh, rec_problems, info, start)
            committed: Checkpoint = {"start": start, "next": skip_until}

            def mark() -> Checkpoint:
                since, window = info.stream.window() if info.stream is not None else (0, b"")
                until = since + len(window)
                return {"size": size, "mark": content_mark(head[:min(MARK_BYTES, until)], window),
                        "mark_from": since, "mark_to": until}
            skip = int(resume.get("skip", 0)) if resume else 0  # of the first batch: stored before a crash

            def problems() -> list[ReadProblem]:
                return self._problems(meter, rec_problems, source)

            def events() -> list[Event]:
                taken, meter.events = meter.events, []
                return taken

            failure: BaseException | None = None
            try:
                if skip_until > start:  # re-meter what the last committed batch covered, silently
                    held: list[Record] = []
                    meter.feed(_until(records, skip_until, held))
                    meter.events.clear()
                    meter.problems.clear()
                    meter.feed(held)
                while not meter.feed(records, batch_size):
                    checkpoint = {"start": meter.resume_index(meter.next_index), "next": meter.next_index}
                    yield from _pieces([events()], problems, checkpoint, _position(fh), committed, batch_size, skip,
                                       mark)
                    committed, skip = checkpoint, 0
            except Exception as exc:  # the file fails part-way: keep what was read of it
                failure = exc
            end = max((p.index + 1 for p in rec_problems), default=meter.next_index)
            end = max(end, meter.next_index)
            if failure is not None:
                rec_problems.append(Problem(-1, _failure_reason(failure), f"{failure} (after packet {end - 1}; "
                                            "open flows reported with event.reason read-error)"))
            reason = "read-error" if failure is not None else "end-of-capture"

            def flushed() -> Iterator[list[Event]]:
                # a quarter of a batch at a time: _pieces holds at most one batch and a quarter of
                # events before handing a batch over (whole batches held up to two)
                yield events()  # what the last packets made
                while not meter.flush(reason, max(1, batch_size // 4)):
                    yield events()
                yield events()

            yield from _pieces(flushed(), problems, {"start": end, "next": end, "done": True}, _position(fh),
                               committed, batch_size, skip, mark)

    @staticmethod
    def _problems(meter: FlowMeter, rec_problems: list[Problem], source: str) -> list[ReadProblem]:
        problems = [ReadProblem(source, f"packet {p.index}" if p.index >= 0 else "file", p.reason, p.detail)
                    for p in (*rec_problems, *meter.problems)]
        rec_problems.clear()
        meter.problems.clear()
        return problems
