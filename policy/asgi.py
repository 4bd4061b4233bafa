"""In-process enforcement for Python services: an ASGI middleware around any ASGI app.

Each HTTP request is decided before the app sees it: the service name is fixed when the
middleware is built (a service knows who it is), the token comes from ``Authorization``,
the source IP from the connection (or, when ``trust_forwarded`` is set because a trusted
proxy sits in front, the last ``x-forwarded-for`` hop). A denial answers 403 with the
decision id and reason and never reaches the app; an allowed request reaches it with the
decision and identity in ``scope["state"]["ztsoc"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policy.engine import Engine
from policy.request import Request
from policy.server import Receive, Scope, Send, bearer, decision_headers


@dataclass
class PolicyMiddleware:
    app: Callable[..., Any]
    engine: Engine
    service: str
    trust_forwarded: bool = False
    #: Paths the app serves without a decision (its own health checks).
    exempt: tuple[str, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        auth = None
        forwarded = None
        for k, v in scope.get("headers", ()):
            if k == b"authorization":
                auth = v.decode("latin-1")
            elif k == b"x-forwarded-for":
                forwarded = v.decode("latin-1")
        ip = scope["client"][0] if scope.get("client") else None
        if self.trust_forwarded and forwarded:
            ip = forwarded.rsplit(",", 1)[-1].strip()
        req = Request(service=self.service, method=scope["method"], path=scope["path"], token=bearer(auth),
                      source_ip=ip)
        decision = self.engine.decide(req)
        if not decision.allow:
            body = f"denied: {decision.reason}\n".encode("utf-8", "replace")[:2048]
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()), *decision_headers(decision)]})
            await send({"type": "http.response.body", "body": body})
            return
        state = scope.setdefault("state", {})
        state["ztsoc"] = {"decision": decision, "principal": req.principal, "roles": req.roles,
                          "scopes": req.scopes, "groups": req.groups}
        await self.app(scope, receive, send)
