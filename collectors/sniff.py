"""Which reader a file needs, from its first bytes: for ``soc scan`` over a folder of mixed evidence.

A responder points ``soc scan`` at whatever was collected (``Security.evtx``, ``auth.log.2.gz``,
a capture, a ``journalctl -o json`` export, ECS JSON lines): the reader is chosen by content,
not by name, because collected files are often renamed. Gzip is looked through (logrotate's
``.gz``, compressed captures).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

#: how many bytes are looked at (enough for a JSON line's first keys)
SNIFF_BYTES = 4096

_PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")


#: the start of a syslog line: RFC 3164 (``<pri>Mmm dd hh:mm:ss``, the priority usually absent in
#: files) or RFC 5424 / rsyslog's ISO form (``<pri>1 2026-...`` or ``2026-11-25T08:00:00...``)
_SYSLOG_LINE = re.compile(rb"(?:<\d{1,3}>)?(?:\d{1,2} )?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d)")


class UnknownFormat(ValueError):
    """The file is none of the formats ztsoc reads (the message says what it looked like)."""


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read(SNIFF_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnknownFormat(f"damaged gzip: {exc}") from exc
    return head


def reader_for(path: Path) -> str:
    """The name of the reader (``collectors.registry.READERS``) for this file; ``UnknownFormat`` if none."""
    head = _head(path)
    if head.startswith(b"ElfFile\x00"):
        return "evtx"
    if head[:4] in _PCAP_MAGICS:
        return "pcap"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)[0]
        return "journald" if b'"__REALTIME_TIMESTAMP"' in first or b'"__CURSOR"' in first else "jsonl"
    if not head:
        raise UnknownFormat("empty file")
    sample = head[:512]
    if b"\x00" in sample:
        raise UnknownFormat("binary content of an unknown format")
    first = next((ln for ln in head.split(b"\n") if ln.strip()), b"")
    if _SYSLOG_LINE.match(first):
        return "syslog"
    raise UnknownFormat("text that is not syslog, JSON lines or a journald export")


def expand(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as named, folders walked (sorted, hidden files skipped)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts):
                    yield child
        else:
            yield path
