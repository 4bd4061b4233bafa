"""The ASGI middleware enforcing decisions in process, driven through the ASGI interface."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_tokens import svid, user_token, verifier

from policy.asgi import PolicyMiddleware
from policy.canonical import canonical_path
from policy.engine import Engine
from policy.language import policy_set_from_text
from policy.risk import StaticRisk

POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: clerks-read
    effect: allow
    destination: {services: [records], methods: [GET]}
    when: {claims: {roles: {any: [clerk]}}}
"""


async def inner_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    who = scope.get("state", {}).get("ztsoc", {}).get("principal") or "-"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": f"hello {who}".encode()})


def run(app: PolicyMiddleware, method: str, path: str, headers: dict[str, str] | list[tuple[str, str]],
        client: str = "10.0.0.7") -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg: MutableMapping[str, Any]) -> None:
        sent.append(msg)

    pairs = list(headers.items()) if isinstance(headers, dict) else headers
    if not any(k == "host" for k, _ in pairs):
        pairs.append(("host", "records.gov.example"))
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "client": (client, 5555),
             "http_version": "1.1", "headers": [(k.encode(), v.encode()) for k, v in pairs]}
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def _mw() -> PolicyMiddleware:
    engine = Engine.from_policy_set(policy_set_from_text(POLICY), verifier=verifier(), risk=StaticRisk())
    return PolicyMiddleware(inner_app, engine, service="records", exempt=("/healthz",))


def test_allowed_request_reaches_app_with_identity() -> None:
    status, _, body = run(_mw(), "GET", "/records/1", {"authorization": f"Bearer {user_token(aud='records')}"})
    assert status == 200 and body == b"hello clerk-7"


def test_denied_request_never_reaches_app() -> None:
    status, headers, body = run(_mw(), "POST", "/records/1", {"authorization": f"Bearer {user_token(aud='records')}"})
    assert status == 403 and b"hello" not in body and headers[b"x-ztsoc-decision"] == b"deny"
    status, headers, _ = run(_mw(), "GET", "/records/1", {"authorization": f"Bearer {svid(aud='other')}"})
    assert status == 403 and b"wrong audience" in headers[b"x-ztsoc-reason"]
    status, _, _ = run(_mw(), "GET", "/records/1", {})
    assert status == 403


def test_exempt_paths_pass() -> None:
    assert run(_mw(), "GET", "/healthz", {})[0] == 200


def test_same_canonicaliser_as_the_server() -> None:
    token = f"Bearer {user_token(aud='records')}"
    # Two Authorization headers (garbage, then a valid token): refused, never "last one wins".
    status, headers, _ = run(_mw(), "GET", "/records/1", [("authorization", "Bearer x.y.z"), ("authorization", token)])
    assert status == 403 and b"2 Authorization headers" in headers[b"x-ztsoc-reason"]
    status, headers, _ = run(_mw(), "GET ", "/records/1", {"authorization": token})
    assert status == 400 and b"not an RFC 9110 token" in headers[b"x-ztsoc-reason"]
    status, headers, _ = run(_mw(), "get", "/records/1", {"authorization": token})
    assert status == 400 and b"only in case" in headers[b"x-ztsoc-reason"]
    status, headers, _ = run(_mw(), "GET", "/records/%2e%2e/x%2Fy", {"authorization": token})
    assert status == 403 and b"encodes '/'" in headers[b"x-ztsoc-reason"]


def test_forwarded_for_only_from_a_trusted_proxy() -> None:
    import ipaddress

    from policy.canonical import TrustedProxy

    text = POLICY + """\
  - name: office-only
    effect: allow
    source: {ip_ranges: [10.20.0.0/16]}
    destination: {services: [records], methods: [PUT]}
"""
    engine = Engine.from_policy_set(policy_set_from_text(text), verifier=verifier(), risk=StaticRisk())
    proxy = TrustedProxy("lb", (ipaddress.ip_network("10.0.0.0/24"),), client_address="x-forwarded-for")
    mw = PolicyMiddleware(inner_app, engine, service="records", proxies=(proxy,))
    office = {"x-forwarded-for": "10.20.3.4"}
    assert run(mw, "PUT", "/records/1", office, client="10.0.0.7")[0] == 200  # the proxy says so
    assert run(mw, "PUT", "/records/1", office, client="192.0.2.9")[0] == 403  # a client says so


# -- through real uvicorn and a real Starlette app: the app serves exactly what was decided ---------
SERVED_POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: s
rules:
  - name: admin-deny
    effect: deny
    destination: {services: [records], paths: ["/admin/..."]}
  - name: public-read
    effect: allow
    destination: {services: [records], methods: [GET], paths: ["/public/**", "/public/", "/public"]}
"""


@pytest.fixture(scope="module")
def served() -> Iterator[int]:
    """uvicorn (httptools) running a Starlette app behind the middleware; the app echoes what it routed on."""
    import threading
    import time

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def echo(area: str) -> Any:
        async def endpoint(request: StarletteRequest) -> JSONResponse:
            decision = request.scope["state"]["ztsoc"]["decision"]
            return JSONResponse({"area": area, "path": request.scope["path"],
                                 "raw_path": request.scope["raw_path"].decode("latin-1"),
                                 "decision_id": decision.decision_id})
        return endpoint

    app = Starlette(routes=[Route("/admin/{rest:path}", echo("admin")), Route("/public/{rest:path}", echo("public")),
                            Route("/public", echo("public"))])
    sink = _Decided()
    engine = Engine.from_policy_set(policy_set_from_text(SERVED_POLICY), risk=StaticRisk(), sink=sink)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(PolicyMiddleware(app, engine, service="records"), host="127.0.0.1",
                                           port=port, http="httptools", lifespan="off", log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    _SINKS[port] = sink
    yield port
    server.should_exit = True
    thread.join(timeout=10)


class _Decided:
    def __init__(self) -> None:
        self.paths: dict[str, str] = {}

    def submit(self, request: Any, decision: Any) -> None:
        self.paths[decision.decision_id] = request.path


_SINKS: dict[int, _Decided] = {}


def _get(port: int, target: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: records\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(("target", "status", "area"), [
    (b"/admin/x", 403, None), (b"/public/x", 200, "public"),
    (b"/admin/../public/x", 200, "public"), (b"/admin/%2e%2e/public/x", 200, "public"),
    (b"/admin/.%2E/public//x", 200, "public"), (b"/public/../admin/x", 403, None),
    (b"/public/%2e%2e/admin/x", 403, None), (b"//admin/x", 403, None),
])
def test_the_app_serves_the_path_that_was_decided(served: int, target: bytes, status: int, area: str | None) -> None:
    code, _, body = _get(served, target)
    assert code == status, (target, body)
    if status != 200:
        assert b"area" not in body
        return
    echo = json.loads(body)
    decided = _SINKS[served].paths[echo["decision_id"]]
    assert echo["area"] == area and echo["path"] == decided == canonical_path(target.decode())
    assert unquote(echo["raw_path"]) == decided


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["admin", "public", "x", "..", ".", "", "%2e%2e", "%2E", ".%2e", "caf%C3%A9",
                                 "a%20b", "%61dmin"]), min_size=1, max_size=6))
def test_generated_targets_are_served_as_decided(served: int, segments: list[str]) -> None:
    target = ("/" + "/".join(segments)).encode()
    code, _, body = _get(served, target)
    if code != 200:
        assert code in (400, 403, 404) and b'"area"' not in body
        return
    echo = json.loads(body)
    decided = _SINKS[served].paths[echo["decision_id"]]
    assert echo["path"] == decided and unquote(echo["raw_path"]) == decided
    assert echo["area"] == "public" and not decided.casefold().startswith("/admin")
