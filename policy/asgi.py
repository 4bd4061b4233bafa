"""In-process enforcement for Python services: an ASGI middleware around any ASGI app.

Each HTTP request is decided before the app sees it, canonicalised by the same
``policy.canonical`` rules as the decision server: the service name is fixed when the
middleware is built (a service knows who it is), the token comes from the one
``Authorization`` header, the source IP from the connection unless the peer is one of
``proxies`` (trusted proxies, each naming the header it sets). A denial answers 403 (400
for malformed HTTP) with the decision id and reason and never reaches the app; an allowed
request reaches it with the decision and identity in ``scope["state"]["ztsoc"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policy.canonical import FrontConfig, Refused, TrustedProxy, canonical_request, refused_request
from policy.engine import Engine
from policy.server import Receive, Scope, Send, decision_headers, http_request_of


@dataclass
class PolicyMiddleware:
    app: Callable[..., Any]
    engine: Engine
    service: str
    proxies: tuple[TrustedProxy, ...] = ()
    #: Paths the app serves without a decision (its own health checks), matched exactly.
    exempt: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.front = FrontConfig(proxies=self.proxies, service=self.service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        http = http_request_of(scope)
        try:
            req = canonical_request(http, self.front)
        except Refused as exc:
            await self._deny(send, exc.status, self.engine.refuse(refused_request(http, self.front), str(exc)))
            return
        decision = self.engine.decide(req)
        if not decision.allow:
            await self._deny(send, 403, decision)
            return
        state = scope.setdefault("state", {})
        state["ztsoc"] = {"decision": decision, "principal": req.principal, "roles": req.roles,
                          "scopes": req.scopes, "groups": req.groups}
        await self.app(scope, receive, send)

    @staticmethod
    async def _deny(send: Send, status: int, decision: Any) -> None:
        body = f"denied: {decision.reason}\n".encode("utf-8", "replace")[:2048]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *decision_headers(decision)]})
        await send({"type": "http.response.body", "body": body})
