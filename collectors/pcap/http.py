"""HTTP/1.x request and status lines into ECS ``http.*``, ``url.*`` and ``user_agent.*``.

Hand-written: only the start line and a few headers of each message head are read.
:class:`HttpStream` follows one direction of a connection (its bytes in order, from
:mod:`tcpstream`): a head split across segments is joined, up to :data:`MAX_HEAD` bytes
(16 KiB; a longer head is dropped and reported, so memory stays flat), and a body of a
known length (``Content-Length``) is skipped, so its bytes are never read as a head, and so
is a chunked body (``Transfer-Encoding: chunked``): its chunk-size lines are read and each
chunk skipped, then the trailer section, so the message after it is read where it starts
(pipelined requests after a chunked upload are each an event). Chunk framing is bounded:
a size line longer than :data:`MAX_CHUNK_LINE` or of more than 16 hex digits, a chunk not
followed by its line end, or a trailer line longer than :data:`MAX_HEAD` makes the body
unreadable. That, a body of unknown length (a response that ends with its connection)
and anything that is not a message where one should start put the stream back to waiting
for a segment that starts with a method or ``HTTP/``: what the decoder did before it
joined segments.
Lines may end in CRLF or a bare LF, the start line's parts may be separated by runs of
spaces, and pipelined messages are each read (16 at most per segment). A request is
paired with the next status line seen in the other direction (HTTP/1.1 answers in
order); unanswered requests are still reported when the flow ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

METHODS = frozenset((b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
                     b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH"))
#: first four bytes of a request or a response: the cheap test made on every segment
PREFIXES = frozenset(m[:4] if len(m) >= 4 else m + b" " for m in METHODS) | {b"HTTP"}
#: a message head (start line, headers, blank line) is read up to this many bytes, joined across
#: segments; past it the message is a problem of its flow ("HTTP head too long") and is not read.
#: 16 KiB is twice Apache's and nginx's default limit on one header line (8 KiB).
MAX_HEAD = 16384
#: what :class:`HttpStream.skip` holds when the length of a body is not known
UNKNOWN = -1
#: what :func:`body_length` says of a chunked body (read by :meth:`HttpStream.body`)
CHUNKED = -2
#: a chunk-size line (hex size, ``;`` extensions, line end) is read up to this many bytes
MAX_CHUNK_LINE = 1024
#: hex digits of a chunk size at most (16: 2**64 bytes; more is not a size anyone sends)
MAX_CHUNK_DIGITS = 16
#: where a stream is in a chunked body, in ``HttpStream.chunk``
NO_CHUNKS = 0  # not in a chunked body
CHUNK_SIZE = 1  # a chunk-size line is next
CHUNK_END = 2  # the line end after a chunk's data is next
TRAILERS = 3  # after the last chunk: trailer lines, up to an empty line
HEX = b"0123456789abcdefABCDEF"


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    version: str
    host: str | None = None
    user_agent: str | None = None
    referrer: str | None = None
    content_length: int | None = None
    #: its place among the requests pipelined in one segment (0: the first)
    order: int = 0
    chunked: bool = False


@dataclass(slots=True)
class HttpResponse:
    version: str
    status: int
    content_length: int | None = None
    chunked: bool = False


def _header(head: bytes, low: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (given as ``b"\nname:"``, lower case) in the message head.

    Lines may end in CRLF or a bare LF (both are seen; servers accept both): the value ends
    at the next LF and is stripped of the CR and spaces.
    """
    at = low.find(name)
    if at < 0:
        return None
    start = at + len(name)
    end = head.find(b"\n", start)
    return head[start:end if end >= 0 else len(head)].strip()


def _length(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _split_head(head: bytes) -> tuple[bytes, bytes, bytes]:
    """(start line, header lines, the header lines in lower case) of one message head."""
    line_end = head.find(b"\n", 0, MAX_HEAD)
    if line_end < 0:
        return head[:MAX_HEAD].rstrip(b"\r"), b"", b""
    lines = head[line_end:MAX_HEAD]
    return head[:line_end].rstrip(b"\r"), lines, lines.lower()


def _chunked(low: bytes) -> bool:
    """Transfer-Encoding chunked: the body's length is not known from the head (it wins over Content-Length)."""
    value = _header(low, low, b"\ntransfer-encoding:")
    return value is not None and b"chunked" in value


def _request(head: bytes) -> HttpRequest | None:
    first, lines, low = _split_head(head)
    parts = first.split()  # runs of spaces or tabs between the three parts are accepted, as servers do
    if len(parts) < 3 or parts[0] not in METHODS or not parts[-1].startswith(b"HTTP/"):
        return None
    # a target with spaces in it (refused by most servers, still what the client asked for: tshark reads it too)
    target = parts[1] if len(parts) == 3 else first.split(None, 1)[1].rsplit(None, 1)[0]
    return HttpRequest(method=parts[0].decode(), target=target.decode("latin-1"),
                       version=parts[-1][5:].decode("latin-1"), host=_text(_header(lines, low, b"\nhost:")),
                       user_agent=_text(_header(lines, low, b"\nuser-agent:")),
                       referrer=_text(_header(lines, low, b"\nreferer:")),
                       content_length=_length(_header(lines, low, b"\ncontent-length:")), chunked=_chunked(low))


def _response(head: bytes) -> HttpResponse | None:
    if not head.startswith(b"HTTP/"):
        return None
    first, lines, low = _split_head(head)
    parts = first.split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > 3:
        return None
    return HttpResponse(version=parts[0][5:].decode("latin-1"), status=int(parts[1]),
                        content_length=_length(_header(lines, low, b"\ncontent-length:")), chunked=_chunked(low))


def _head_of(payload: bytes) -> bytes:
    end = head_end(payload, 0, MAX_HEAD)
    return payload[:end] if end >= 0 else payload[:MAX_HEAD]


def parse_request(payload: bytes) -> HttpRequest | None:
    """The request whose head starts ``payload`` (read up to its blank line), or None if none starts it."""
    return _request(_head_of(payload))


def parse_response(payload: bytes) -> HttpResponse | None:
    return _response(_head_of(payload))


#: messages read from one segment at most (pipelined requests, or their answers)
MAX_PIPELINED = 16


def head_end(data: bytes, start: int, limit: int) -> int:
    """Where the bytes after the head's blank line start (CRLF CRLF, LF LF or LF CRLF), or -1."""
    bare = data.find(b"\n\n", start, limit)
    crlf = data.find(b"\n\r\n", start, limit if bare < 0 else bare)
    if crlf >= 0:
        return crlf + 3
    return bare + 2 if bare >= 0 else -1


def body_length(msg: HttpRequest | HttpResponse, request_method: str | None = None) -> int:
    """The body bytes that follow a head (RFC 9112 section 6.3), or UNKNOWN.

    A response to HEAD, a 1xx, 204 or 304 has none whatever it says; a chunked body is
    CHUNKED (whatever Content-Length says); a response without a length (it ends with the
    connection) is UNKNOWN; a request without a length has none.
    """
    if isinstance(msg, HttpResponse):
        if request_method == "HEAD" or msg.status < 200 or msg.status in (204, 304):
            return 0
        if msg.chunked:
            return CHUNKED
        if msg.content_length is None:
            return UNKNOWN
        return max(0, msg.content_length)
    if msg.chunked:
        return CHUNKED
    return max(0, msg.content_length or 0)


def chunk_size(line: bytes) -> int:
    """The size a chunk-size line gives (``1a2b;ext=1\r``, the LF cut off), or -1 if it gives none."""
    size = line.split(b";", 1)[0].strip(b" \t\r")  # spaces before an extension are seen (RFC 9112 7.1.1 BWS)
    if not size or len(size) > MAX_CHUNK_DIGITS or size.strip(HEX):
        return -1
    return int(size, 16)


class HttpStream:
    """One direction of an HTTP connection: its message heads, joined across segments, bodies skipped.

    :meth:`heads` is given the direction's new bytes in order and yields each complete
    head as ``(head, packet index, time, order)`` where the index and time are those of
    the segment the head started in and ``order`` its place among the messages that
    started there; ``None`` instead of the head is a head longer than MAX_HEAD. After each
    head the caller gives the body's length to :meth:`body` (:func:`body_length`), read
    when the generator resumes. Memory: at most MAX_HEAD bytes held (a head's start, or
    the start of a chunk-size or trailer line).
    """

    __slots__ = ("buf", "chunk", "index", "line", "order", "skip", "ts")

    def __init__(self) -> None:
        self.buf = b""  # the start of a head whose end has not come yet
        self.index = self.ts = self.order = 0  # where that head started
        #: body bytes still to skip; 0: a head starts at the next byte; UNKNOWN: wait for a
        #: segment that starts with a method or HTTP/ (the first bytes, after a gap, after a
        #: body of unknown length)
        self.skip = UNKNOWN
        self.chunk = NO_CHUNKS  # where the stream is in a chunked body (CHUNK_SIZE, CHUNK_END, TRAILERS)
        self.line = b""  # the start of a chunk-size or trailer line whose end has not come yet

    def reset(self) -> None:
        """The next bytes do not follow the previous ones (a gap in the capture)."""
        self.buf, self.skip, self.chunk, self.line = b"", UNKNOWN, NO_CHUNKS, b""

    def body(self, length: int) -> None:
        """The message whose head was just read has a body of ``length`` (:func:`body_length`)."""
        if length == CHUNKED:
            self.skip, self.chunk = 0, CHUNK_SIZE
        else:
            self.skip = length

    def _framing(self, data: bytes, at: int, n: int) -> int:
        """Read a chunked body's framing from ``data[at:]`` up to a chunk's data (then :attr:`skip`
        is its size) or the body's end (:attr:`chunk` is NO_CHUNKS); where it stopped. An
        incomplete line is held (n is returned); unreadable framing sets :attr:`skip` to UNKNOWN."""
        while at < n:
            state = self.chunk
            if state == CHUNK_END:  # CRLF (or a bare LF) after a chunk's data
                c = data[at]
                if c == 13 and at + 1 < n and data[at + 1] == 10:
                    at += 2
                elif c == 10:
                    at += 1
                elif c == 13 and at + 1 == n:
                    self.line = data[at:]
                    return n
                else:  # the chunk's data did not end where its size said
                    self.skip, self.chunk = UNKNOWN, NO_CHUNKS
                    return n
                self.chunk = CHUNK_SIZE
            elif state == CHUNK_SIZE:
                end = self._line_end(data, at, n, MAX_CHUNK_LINE)
                if end < 0:
                    return n
                size = chunk_size(data[at:end])
                at = end + 1
                if size < 0:
                    self.skip, self.chunk = UNKNOWN, NO_CHUNKS
                    return n
                if size == 0:  # the last chunk: trailer lines follow, then an empty line
                    self.chunk = TRAILERS
                else:
                    self.skip, self.chunk = size, CHUNK_END
                    return at
            else:  # TRAILERS
                end = self._line_end(data, at, n, MAX_HEAD)
                if end < 0:
                    return n
                empty = end == at or (end == at + 1 and data[at] == 13)
                at = end + 1
                if empty:  # the body ends: a message starts at the next byte
                    self.chunk = NO_CHUNKS
                    return at
        return at

    def _line_end(self, data: bytes, at: int, n: int, limit: int) -> int:
        """Where the line starting at ``at`` ends (its LF), or -1: its start is held for the next
        bytes, or, when it runs past ``limit`` bytes, the body is unreadable."""
        end = data.find(b"\n", at, at + limit)
        if end < 0:
            if n - at >= limit:
                self.skip, self.chunk = UNKNOWN, NO_CHUNKS
            else:
                self.line = data[at:]
        return end

    def heads(self, data: bytes, index: int, ts: int) -> Iterator[tuple[bytes | None, int, int, int]]:
        if self.line:  # the start of a chunk-size or trailer line: the new bytes continue it
            data = self.line + data
            self.line = b""
        n = len(data)
        at = 0
        if self.buf:
            old = self.buf
            joined = old + data[:MAX_HEAD]
            self.buf = b""
            if joined[:4] not in PREFIXES:
                if len(joined) < 4:
                    self.buf = joined
                    return
                self.skip = UNKNOWN  # what was held was not a message after all: try the new bytes alone
            else:
                end = head_end(joined, max(0, len(old) - 2), MAX_HEAD)
                if end < 0:
                    if len(joined) >= MAX_HEAD:
                        self.skip = UNKNOWN
                        yield None, self.index, self.ts, self.order
                    else:
                        self.buf = joined
                    return
                self.skip = 0
                yield joined[:end], self.index, self.ts, self.order
                at = end - len(old)
        if self.skip == UNKNOWN:
            if at or data[:4] not in PREFIXES:
                return
            self.skip = 0
        order = 0
        while at < n:
            skip = self.skip
            if skip > 0:
                take = skip if skip < n - at else n - at
                self.skip -= take
                at += take
                continue
            if self.chunk:  # in a chunked body: its framing, up to the next chunk's data or its end
                at = self._framing(data, at, n)
                if self.skip == UNKNOWN:
                    return
                continue
            if skip < 0 or order >= MAX_PIPELINED:  # a body of unknown length, or enough from one segment
                self.skip = UNKNOWN
                return
            while at < n and data[at] in (10, 13):  # empty lines before a message are ignored (RFC 9112 2.2)
                at += 1
            if n - at < 4:
                if at < n:
                    self.buf, self.index, self.ts, self.order = data[at:], index, ts, order
                return
            if data[at:at + 4] not in PREFIXES:
                self.skip = UNKNOWN
                return
            end = head_end(data, at, at + MAX_HEAD)
            if end < 0:
                if n - at >= MAX_HEAD:
                    self.skip = UNKNOWN
                    yield None, index, ts, order
                else:
                    self.buf, self.index, self.ts, self.order = data[at:], index, ts, order
                return
            self.skip = 0
            yield data[at:end], index, ts, order
            order += 1
            at = end


def parse_head(head: bytes) -> HttpRequest | HttpResponse | None:
    """A complete head (as :class:`HttpStream` yields it): the request or response it starts, or None."""
    return _response(head) if head[:5] == b"HTTP/" else _request(head)


def http_fields(req: HttpRequest, resp: HttpResponse | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "http.request.method": req.method,
        "http.version": req.version,
        "url.original": req.target,
    }
    target = req.target
    if "://" in target:  # absolute form (to a proxy)
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    path, _, query = target.partition("?")
    doc["url.path"] = path
    if query:
        doc["url.query"] = query
    if req.host:
        doc["url.domain"] = req.host.rsplit(":", 1)[0] if not req.host.endswith("]") else req.host
    if req.user_agent:
        doc["user_agent.original"] = req.user_agent
    if req.referrer:
        doc["http.request.referrer"] = req.referrer
    if req.content_length is not None:
        doc["http.request.body.bytes"] = req.content_length
    if resp is not None:
        doc["http.response.status_code"] = resp.status
        if resp.content_length is not None:
            doc["http.response.body.bytes"] = resp.content_length
    return doc
