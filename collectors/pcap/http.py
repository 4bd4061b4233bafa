"""HTTP/1.x request and status lines into ECS ``http.*``, ``url.*`` and ``user_agent.*``.

Hand-written: only the start line and a few headers of each message head are read.
:class:`HttpStream` follows one direction of a connection (its bytes in order, from
:mod:`tcpstream`): a head split across segments is joined, up to :data:`MAX_HEAD` bytes
(16 KiB; a longer head is dropped and reported, so memory stays flat), and a body of a
known length (``Content-Length``) is skipped, so its bytes are never read as a head. A
body of unknown length (chunked, or until the connection closes) and anything that is
not a message where one should start put the stream back to waiting for a segment that
starts with a method or ``HTTP/``: what the decoder did before it joined segments.
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


def _chunked(head: bytes, low: bytes) -> bool:
    value = _header(low, low, b"\ntransfer-encoding:")
    return value is not None and b"chunked" in value


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _split_head(payload: bytes, at: int) -> tuple[bytes, bytes, int]:
    """(start line, header lines, where the message body starts) of the message at ``at``."""
    line_end = payload.find(b"\n", at, at + MAX_HEAD)
    if line_end < 0:
        return payload[at:at + MAX_HEAD].rstrip(b"\r"), b"", len(payload)
    first = payload[at:line_end].rstrip(b"\r")
    blank = payload.find(b"\n\r\n", line_end, at + MAX_HEAD)
    bare = payload.find(b"\n\n", line_end, blank if blank >= 0 else at + MAX_HEAD)
    if bare >= 0:
        return first, payload[line_end:bare + 1], bare + 2
    if blank >= 0:
        return first, payload[line_end:blank + 1], blank + 3
    return first, payload[line_end:at + MAX_HEAD], len(payload)


def _request_at(payload: bytes, at: int) -> tuple[HttpRequest, int] | None:
    first, head, body = _split_head(payload, at)
    parts = first.split()  # runs of spaces or tabs between the three parts are accepted, as servers do
    if len(parts) != 3 or parts[0] not in METHODS or not parts[2].startswith(b"HTTP/"):
        return None
    low = head.lower()
    req = HttpRequest(method=parts[0].decode(), target=parts[1].decode("latin-1"),
                      version=parts[2][5:].decode("latin-1"), host=_text(_header(head, low, b"\nhost:")),
                      user_agent=_text(_header(head, low, b"\nuser-agent:")),
                      referrer=_text(_header(head, low, b"\nreferer:")),
                      content_length=_length(_header(head, low, b"\ncontent-length:")),
                      chunked=_chunked(head, low))
    return req, body + max(0, req.content_length or 0)


def _response_at(payload: bytes, at: int) -> tuple[HttpResponse, int] | None:
    if not payload.startswith(b"HTTP/", at):
        return None
    first, head, body = _split_head(payload, at)
    parts = first.split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > 3:
        return None
    low = head.lower()
    resp = HttpResponse(version=parts[0][5:].decode("latin-1"), status=int(parts[1]),
                        content_length=_length(_header(head, low, b"\ncontent-length:")), chunked=_chunked(head, low))
    return resp, body + max(0, resp.content_length or 0)


def parse_request(payload: bytes) -> HttpRequest | None:
    """The request at the start of ``payload``, or None if it does not start one."""
    found = _request_at(payload, 0)
    return found[0] if found else None


def parse_response(payload: bytes) -> HttpResponse | None:
    found = _response_at(payload, 0)
    return found[0] if found else None


#: messages read from one segment at most (pipelined requests, or their answers)
MAX_PIPELINED = 16


def _pipelined(payload: bytes, parse: Any) -> list[Any]:
    out: list[Any] = []
    at = 0
    while len(out) < MAX_PIPELINED:
        found = parse(payload, at)
        if found is None:
            break
        if out and hasattr(found[0], "order"):
            found[0].order = len(out)
        out.append(found[0])
        at = found[1]
        if at >= len(payload) or payload[at:at + 4] not in PREFIXES:
            break
    return out


def parse_requests(payload: bytes) -> list[HttpRequest]:
    """Every request that starts in the segment: the first, and those pipelined after it."""
    return _pipelined(payload, _request_at)


def parse_responses(payload: bytes) -> list[HttpResponse]:
    return _pipelined(payload, _response_at)


def head_end(data: bytes, start: int, limit: int) -> int:
    """Where the bytes after the head's blank line start (CRLF CRLF, LF LF or LF CRLF), or -1."""
    bare = data.find(b"\n\n", start, limit)
    crlf = data.find(b"\n\r\n", start, limit if bare < 0 else bare)
    if crlf >= 0:
        return crlf + 3
    return bare + 2 if bare >= 0 else -1


def body_length(msg: HttpRequest | HttpResponse, request_method: str | None = None) -> int:
    """The body bytes that follow a head (RFC 9112 section 6.3), or UNKNOWN.

    A response to HEAD, a 1xx, 204 or 304 has none whatever it says; a chunked body, or a
    response without a length (it ends with the connection), is UNKNOWN; a request without
    a length has none.
    """
    if isinstance(msg, HttpResponse):
        if request_method == "HEAD" or msg.status < 200 or msg.status in (204, 304):
            return 0
        if msg.chunked or msg.content_length is None:
            return UNKNOWN
        return max(0, msg.content_length)
    if msg.chunked:
        return UNKNOWN
    return max(0, msg.content_length or 0)


class HttpStream:
    """One direction of an HTTP connection: its message heads, joined across segments, bodies skipped.

    :meth:`heads` is given the direction's new bytes in order and yields each complete
    head as ``(head, packet index, time, order)`` where the index and time are those of
    the segment the head started in and ``order`` its place among the messages that
    started there; ``None`` instead of the head is a head longer than MAX_HEAD. After each
    head the caller sets :attr:`skip` to the body length (:func:`body_length`), read when
    the generator resumes. Memory: at most MAX_HEAD bytes held.
    """

    __slots__ = ("buf", "index", "order", "skip", "ts")

    def __init__(self) -> None:
        self.buf = b""  # the start of a head whose end has not come yet
        self.index = self.ts = self.order = 0  # where that head started
        #: body bytes still to skip; 0: a head starts at the next byte; UNKNOWN: wait for a
        #: segment that starts with a method or HTTP/ (the first bytes, after a gap, after a
        #: body of unknown length)
        self.skip = UNKNOWN

    def reset(self) -> None:
        """The next bytes do not follow the previous ones (a gap in the capture)."""
        self.buf, self.skip = b"", UNKNOWN

    def heads(self, data: bytes, index: int, ts: int) -> Iterator[tuple[bytes | None, int, int, int]]:
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
    if head[:5] == b"HTTP/":
        found: tuple[Any, int] | None = _response_at(head, 0)
    else:
        found = _request_at(head, 0)
    return found[0] if found else None


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
