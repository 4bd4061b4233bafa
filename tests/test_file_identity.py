"""Distinct files that begin alike are never conflated; a rotated, renamed or gzipped copy is one file.

Issue 19.3: the line readers' identity is a file's first line, so a second file with the same
first line (an rsyslogd start line) was "resumed" from the first one's checkpoint and its lines
before that offset were never stored, silently. Now each checkpoint carries a mark of the bytes
it covers (``collectors.lines``) and ``collectors.pipeline.resolve`` gives a file whose bytes
differ an identity of its own.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from collectors.pipeline import ingest, resolve
from collectors.syslog import SyslogReader
from eventstore import Store

START = "Nov 25 06:25:01 {host} rsyslogd: [origin software=\"rsyslogd\" swVersion=\"8.2302.0\"] start\n"


def _line(i: int, host: str) -> str:
    return (f"Nov 25 07:{i // 60 % 60:02d}:{i % 60:02d} {host} sshd[{2000 + i}]: "
            f"Failed password for u{i} from 10.0.{i % 250}.{i % 7} port {40000 + i} ssh2\n")


def _reader() -> SyslogReader:
    return SyslogReader(year=2026, tz="UTC")


def _stored(store: Store, path: Path) -> int:
    return store.count(f'log.file.path:"{path}"')


def test_same_first_line_two_hosts_every_line_stored(store: Store, tmp_path: Path) -> None:
    """The issue's case: a 41-line file, then an 81-line file from another host, same first line."""
    a, b = tmp_path / "a" / "messages", tmp_path / "b" / "messages"
    a.parent.mkdir(), b.parent.mkdir()
    a.write_text(START.format(host="web1") + "".join(_line(i, "web1") for i in range(40)))
    b.write_text(START.format(host="web1") + "".join(_line(i, "db7") for i in range(80)))
    first = ingest(store, _reader(), [a])
    second = ingest(store, _reader(), [b])
    assert first.written == 41 and second.written == 81 and second.duplicates == 0
    assert not second.files[0].resumed and second.files[0].identity != first.files[0].identity
    assert _stored(store, b) == 81
    # each file goes on from its own checkpoint
    again = ingest(store, _reader(), [a, b])
    assert again.events == 0 and all(f.resumed for f in again.files)


def test_files_sharing_their_first_4_kib_are_distinct(store: Store, tmp_path: Path) -> None:
    common = START.format(host="web1") + "".join(_line(i, "web1") for i in range(60))
    assert len(common.encode()) > 4096
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(common + "".join(_line(i, "web1") for i in range(60, 70)))
    b.write_text(common + "".join(_line(i, "db7") for i in range(100, 160)))
    assert ingest(store, _reader(), [a]).written == 71
    second = ingest(store, _reader(), [b])
    # the shared lines are b's own events too (its own file, its own ids): nothing of b is dropped
    assert second.written == 121 and second.duplicates == 0
    assert _stored(store, b) == 121 and _stored(store, a) == 71


def test_rotated_renamed_and_gzipped_copies_keep_their_identity(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(START.format(host="web1") + "".join(_line(i, "web1") for i in range(30)))
    first = ingest(store, _reader(), [log])
    assert first.written == 31
    with log.open("a") as fh:  # the daemon writes on, then logrotate renames the file
        fh.writelines(_line(i, "web1") for i in range(30, 45))
    rotated = log.rename(tmp_path / "auth.log.1")
    # a new auth.log begins with the same start line: another file
    log.write_text(START.format(host="web1") + "".join(_line(i, "web1") for i in range(500, 520)))
    report = ingest(store, _reader(), [rotated, log])
    by_path = {Path(f.path).name: f for f in report.files}
    assert by_path["auth.log.1"].resumed and by_path["auth.log.1"].written == 15
    assert by_path["auth.log.1"].identity == first.files[0].identity
    assert not by_path["auth.log"].resumed and by_path["auth.log"].written == 21
    # later compressed: the same file, nothing new, nothing read again
    packed = tmp_path / "auth.log.1.gz"
    with rotated.open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    rotated.unlink()
    again = ingest(store, _reader(), [packed])
    assert again.files[0].resumed and again.events == 0 and again.files[0].identity == first.files[0].identity
    assert store.count() == 31 + 15 + 21


def test_truncated_and_rewritten_with_the_same_first_line_is_a_new_file(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text(START.format(host="web1") + "".join(_line(i, "web1") for i in range(40)))
    assert ingest(store, _reader(), [log]).written == 41
    log.write_text(START.format(host="web1") + "".join(_line(i, "web1") for i in range(900, 910)))  # > file
    report = ingest(store, _reader(), [log])
    assert report.written == 11 and report.duplicates == 0


def test_resolve_probes_the_lineage_in_order(sqlite_store: Store, tmp_path: Path) -> None:
    """Three files with one first line: three identities, each found again by its content."""
    paths = []
    for k in range(3):
        p = tmp_path / f"f{k}.log"
        p.write_text(START.format(host="web1") + "".join(_line(i, f"h{k}") for i in range(5)))
        paths.append(p)
    ingest(sqlite_store, _reader(), paths)
    found = [resolve(sqlite_store, _reader(), p) for p in reversed(paths)]
    assert len({f.identity for f in found}) == 3 and all(f.resume is not None for f in found)
    assert found[-1].identity == _reader().identity(paths[0])  # the first keeps the plain identity
