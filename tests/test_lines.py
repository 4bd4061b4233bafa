"""The shared line loop: offsets, checkpoints, truncation, half-written lines."""

from __future__ import annotations

from pathlib import Path

from collectors.base import read_all
from collectors.jsonl import JsonlReader


def line(i: int) -> str:
    return f'{{"@timestamp": "2026-11-25T10:00:{i % 60:02d}Z", "message": "m{i}"}}\n'


def test_offsets_and_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(line(0) + line(1) + line(2))
    result = read_all(JsonlReader(), path, batch_size=2)
    assert result.batches == 2
    assert [e["ztsoc.log.offset"] for e in result.events] == [0, len(line(0)), len(line(0)) * 2]
    assert {k: result.checkpoint[k] for k in ("offset", "line")} == {"offset": path.stat().st_size, "line": 3}
    # resuming at the end reads nothing and yields no batch
    assert read_all(JsonlReader(), path, resume=result.checkpoint).batches == 0


def test_follow_holds_back_a_half_written_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(line(0) + line(1)[:10])
    reader = JsonlReader(follow=True)
    first = read_all(reader, path)
    assert [e["message"] for e in first.events] == ["m0"] and not first.problems
    with path.open("a") as fh:
        fh.write(line(1)[10:])
    second = read_all(reader, path, resume=first.checkpoint)
    assert [e["message"] for e in second.events] == ["m1"]
    # without follow (a finished file) the last line counts even without a newline
    path.write_text(line(0) + line(1).rstrip("\n"))
    assert len(read_all(JsonlReader(), path).events) == 2


def test_truncated_file_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("".join(line(i) for i in range(10)))
    done = read_all(JsonlReader(), path)
    path.write_text(line(0) + line(50))
    again = read_all(JsonlReader(), path, resume=done.checkpoint)
    assert [e["message"] for e in again.events] == ["m0", "m50"]


def test_gzip_rotated_file_keeps_identity_and_checkpoint(tmp_path: Path) -> None:
    import gzip

    from collectors.base import first_line_identity

    plain = tmp_path / "e.jsonl.1"
    plain.write_text(line(0) + line(1) + line(2))
    done = read_all(JsonlReader(), plain)
    packed = tmp_path / "e.jsonl.2.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert first_line_identity(packed) == first_line_identity(plain)
    assert read_all(JsonlReader(), packed, resume=done.checkpoint).events == []
    again = read_all(JsonlReader(), packed)
    assert [e["event.id"] for e in again.events] == [e["event.id"] for e in done.events]
    half = read_all(JsonlReader(), packed, resume={"offset": len(line(0)), "line": 1})
    assert [e["message"] for e in half.events] == ["m1", "m2"]
