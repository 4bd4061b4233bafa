"""Write small but valid EVTX files, so the EVTX reader is tested on real files without ../shared/data.

No Python library writes EVTX, so this follows the format as libyal documents it
(``libevtx/documentation/Windows XML Event Log (EVTX).asciidoc``): a 4 KiB file header, 64 KiB
chunks (header, string and template tables, records), each record a Binary XML fragment.
Names and values are written inline (no templates, no string table): valid, only bigger
than what Windows writes. The checksums are real CRC-32s, so the parser takes the files
as sound.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHUNK_SIZE = 65536
CHUNK_HEADER = 512
FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
#: (name, attributes, text, children)
Node = tuple[str, Sequence[tuple[str, str]], "str | None", list[Any]]


@dataclass
class Record:
    event_id: int
    time: datetime
    channel: str = "Security"
    provider: str = "Microsoft-Windows-Security-Auditing"
    computer: str = "DC01.corp.local"
    data: dict[str, str] = field(default_factory=dict)
    #: System/Execution's ProcessID and ThreadID attributes, as written (text: a crafted file's may be anything)
    execution: tuple[str, str] | None = None


def _filetime(ts: datetime) -> int:
    return int((ts - FILETIME_EPOCH).total_seconds() * 10_000_000)


def _name_hash(name: str) -> int:
    h = 0
    for ch in name:
        h = (h * 65599 + ord(ch)) & 0xFFFFFFFF
    return h & 0xFFFF


class _Fragment:
    """Binary XML of one record; offsets of inline names are relative to the chunk."""

    def __init__(self, base: int) -> None:
        # Windows (and the parser) expect a record to be a template instance: the whole event is
        # written as the template's definition, with no substitutions.
        self.base = base  # chunk offset where this fragment starts
        self.out = bytearray(b"\x0f\x01\x01\x00\x0c\x01")  # fragment header 1.1, template instance
        self.out += struct.pack("<I", base & 0xFFFFFFFF)  # template id
        self.out += struct.pack("<I", base + len(self.out) + 4)  # definition follows inline
        self.out += struct.pack("<I", 0) + bytes(range(16))  # next template, GUID
        self.size_at = len(self.out)
        self.out += b"\x00\x00\x00\x00"  # definition size, patched in finish()
        self.out += b"\x0f\x01\x01\x00"  # the definition's own fragment header

    def _name(self, name: str) -> None:
        here = self.base + len(self.out) + 4
        self.out += struct.pack("<I", here)  # the name follows inline
        text = name.encode("utf-16-le")
        self.out += struct.pack("<IHH", 0, _name_hash(name), len(name)) + text + b"\x00\x00"

    def _text(self, value: str, token: int = 0x05) -> None:
        self.out += bytes([token, 0x01]) + struct.pack("<H", len(value)) + value.encode("utf-16-le")

    def element(self, name: str, attrs: Sequence[tuple[str, str]] = (), text: str | None = None,
                children: Iterable[Node] = ()) -> None:
        self.out += bytes([0x41 if attrs else 0x01]) + struct.pack("<H", 0xFFFF)
        size_at = len(self.out)
        self.out += b"\x00\x00\x00\x00"  # data size, patched below
        self._name(name)
        if attrs:
            list_at = len(self.out)
            self.out += b"\x00\x00\x00\x00"
            for i, (key, value) in enumerate(attrs):
                self.out += bytes([0x46 if i < len(attrs) - 1 else 0x06])
                self._name(key)
                self._text(value)
            struct.pack_into("<I", self.out, list_at, len(self.out) - list_at - 4)
        kids = list(children)
        if text is None and not kids:
            self.out += b"\x03"  # close empty element
        else:
            self.out += b"\x02"
            if text is not None:
                self._text(text)
            for child_name, child_attrs, child_text, grandchildren in kids:
                self.element(child_name, child_attrs, child_text, grandchildren)
            self.out += b"\x04"
        struct.pack_into("<I", self.out, size_at, len(self.out) - size_at - 4)

    def finish(self) -> bytes:
        self.out += b"\x00"  # end of the definition
        struct.pack_into("<I", self.out, self.size_at, len(self.out) - self.size_at - 4)
        self.out += struct.pack("<I", 0)  # no substitutions
        return bytes(self.out + b"\x00")


def _record_bytes(record: Record, record_id: int, chunk_offset: int) -> bytes:
    frag = _Fragment(chunk_offset + 24)
    system: list[Node] = [
        ("Provider", [("Name", record.provider)], None, []),
        ("EventID", [], str(record.event_id), []),
        ("TimeCreated", [("SystemTime", record.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))], None, []),
        ("EventRecordID", [], str(record_id), []),
        ("Channel", [], record.channel, []),
        ("Computer", [], record.computer, []),
    ]
    if record.execution is not None:
        system.append(("Execution", [("ProcessID", record.execution[0]), ("ThreadID", record.execution[1])], None, []))
    data: list[Node] = [("Data", [("Name", key)], value, []) for key, value in record.data.items()]
    frag.element("Event", [("xmlns", "http://schemas.microsoft.com/win/2004/08/events/event")], None,
                 [("System", [], None, system), ("EventData", [], None, data)])
    body = frag.finish()
    size = 24 + len(body) + 4
    size += (-size) % 8
    out = struct.pack("<4sIQQ", b"\x2a\x2a\x00\x00", size, record_id, _filetime(record.time)) + body
    out += b"\x00" * (size - 4 - len(out))
    return out + struct.pack("<I", size)


def _chunk(records: list[Record], first_id: int, per_chunk: int) -> tuple[bytes, int]:
    """One chunk holding as many of ``records`` as fit (at most ``per_chunk``); returns it and the count."""
    chunk = bytearray(CHUNK_SIZE)
    offset = CHUNK_HEADER
    last_offset = offset
    count = 0
    for record in records[:per_chunk]:
        data = _record_bytes(record, first_id + count, offset)
        if offset + len(data) > CHUNK_SIZE:
            break
        chunk[offset:offset + len(data)] = data
        last_offset = offset
        offset += len(data)
        count += 1
    if not count:
        raise ValueError("a record larger than a chunk")
    last_id = first_id + count - 1
    struct.pack_into("<8sQQQQIIII", chunk, 0, b"ElfChnk\x00", first_id, last_id, first_id, last_id, 128,
                     last_offset, offset, zlib.crc32(bytes(chunk[CHUNK_HEADER:offset])))
    struct.pack_into("<I", chunk, 124, zlib.crc32(bytes(chunk[:120]) + bytes(chunk[128:CHUNK_HEADER])))
    return bytes(chunk), count


def write_evtx(path: Path, records: Sequence[Record], per_chunk: int = 40) -> Path:
    """Records numbered from 1, ``per_chunk`` to a chunk (fewer when they do not fit)."""
    chunks: list[bytes] = []
    done = 0
    while done < len(records):
        chunk, count = _chunk(list(records[done:done + per_chunk]), done + 1, per_chunk)
        chunks.append(chunk)
        done += count
    header = bytearray(4096)
    struct.pack_into("<8sQQQIHHHH", header, 0, b"ElfFile\x00", 0, max(len(chunks) - 1, 0), len(records) + 1,
                     128, 1, 3, 4096, len(chunks))
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    path.write_bytes(bytes(header) + b"".join(chunks))
    return path
