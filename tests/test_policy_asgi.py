"""The ASGI middleware enforcing decisions in process, driven through the ASGI interface."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from policy_tokens import svid, user_token, verifier

from policy.asgi import PolicyMiddleware
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
