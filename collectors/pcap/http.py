"""HTTP/1.x request and status lines into ECS ``http.*``, ``url.*`` and ``user_agent.*``.

Hand-written: only the start line and a few headers of the segment that begins a
message are read (no TCP reassembly), which is what a flow meter can afford per
packet and covers the headers of ordinary requests, which fit in one segment. Lines
may end in CRLF or a bare LF, the start line's parts may be separated by runs of
spaces, and requests pipelined in one segment are each read (16 at most). A request
is paired with the next status line seen in the other direction (HTTP/1.1 answers in
order); unanswered requests are still reported when the flow ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = frozenset((b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
                     b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH"))
#: first four bytes of a request or a response: the cheap test made on every segment
PREFIXES = frozenset(m[:4] if len(m) >= 4 else m + b" " for m in METHODS) | {b"HTTP"}
MAX_HEAD = 8192


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


@dataclass(slots=True)
class HttpResponse:
    version: str
    status: int
    content_length: int | None = None


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
                      content_length=_length(_header(head, low, b"\ncontent-length:")))
    return req, body + max(0, req.content_length or 0)


def _response_at(payload: bytes, at: int) -> tuple[HttpResponse, int] | None:
    if not payload.startswith(b"HTTP/", at):
        return None
    first, head, body = _split_head(payload, at)
    parts = first.split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > 3:
        return None
    resp = HttpResponse(version=parts[0][5:].decode("latin-1"), status=int(parts[1]),
                        content_length=_length(_header(head, head.lower(), b"\ncontent-length:")))
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
