"""HTTP/1.x request and status lines into ECS ``http.*``, ``url.*`` and ``user_agent.*``.

Hand-written: only the start line and a few headers of the segment that begins a
message are read (no TCP reassembly), which is what a flow meter can afford per
packet and covers the headers of ordinary requests, which fit in one segment. A request
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


@dataclass(slots=True)
class HttpResponse:
    version: str
    status: int
    content_length: int | None = None


def _header(head: bytes, low: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (given as ``b"\r\nname:"``, lower case) in the message head."""
    at = low.find(name)
    if at < 0:
        return None
    start = at + len(name)
    end = head.find(b"\r\n", start)
    return head[start:end if end >= 0 else len(head)].strip()


def _length(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def parse_request(payload: bytes) -> HttpRequest | None:
    """The request at the start of ``payload``, or None if it does not start one."""
    line_end = payload.find(b"\r\n", 0, MAX_HEAD)
    first = payload[:line_end] if line_end >= 0 else payload[:MAX_HEAD]
    parts = first.split(b" ")
    if len(parts) != 3 or parts[0] not in METHODS or not parts[2].startswith(b"HTTP/"):
        return None
    body_at = payload.find(b"\r\n\r\n", 0, MAX_HEAD)
    head = payload[line_end:body_at if body_at >= 0 else MAX_HEAD] if line_end >= 0 else b""
    low = head.lower()
    return HttpRequest(method=parts[0].decode(), target=parts[1].decode("latin-1"),
                       version=parts[2][5:].decode("latin-1"), host=_text(_header(head, low, b"\r\nhost:")),
                       user_agent=_text(_header(head, low, b"\r\nuser-agent:")),
                       referrer=_text(_header(head, low, b"\r\nreferer:")),
                       content_length=_length(_header(head, low, b"\r\ncontent-length:")))


def parse_response(payload: bytes) -> HttpResponse | None:
    if not payload.startswith(b"HTTP/"):
        return None
    line_end = payload.find(b"\r\n", 0, MAX_HEAD)
    first = payload[:line_end] if line_end >= 0 else payload[:MAX_HEAD]
    parts = first.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    body_at = payload.find(b"\r\n\r\n", 0, MAX_HEAD)
    head = payload[line_end:body_at if body_at >= 0 else MAX_HEAD] if line_end >= 0 else b""
    return HttpResponse(version=parts[0][5:].decode("latin-1"), status=int(parts[1]),
                        content_length=_length(_header(head, head.lower(), b"\r\ncontent-length:")))


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
