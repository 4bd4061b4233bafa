"""In-process enforcement for Python services: an ASGI middleware around any ASGI app.

Each HTTP request is decided before the app sees it, canonicalised by the same
``policy.canonical`` rules as the decision server: the service name is fixed when the
middleware is built (a service knows who it is), the token comes from the one
``Authorization`` header, the source IP from the connection unless the peer is one of
``proxies`` (trusted proxies, each naming the header it sets). A denial answers 403 (400
for malformed HTTP) with the decision id and reason and never reaches the app; an allowed
request reaches it with the decision and identity in ``scope["state"]["ztsoc"]``.

The app receives exactly the path that was decided: ``scope["path"]`` and
``scope["raw_path"]`` are rewritten to the canonical path (``policy.canonical``: dot
segments resolved, repeated slashes collapsed, percent-escapes decoded once; the query
string untouched). This is what an administrator expects of an HTTP server: nginx, Apache
and IIS resolve ``/admin/../public/x`` to ``/public/x`` before choosing what to serve, and
browsers never send dot segments at all (they resolve them first), so resolving breaks no
real client, while uvicorn and Starlette keep the segments and would route
``/admin/../public/x`` under ``/admin/{rest}`` after a decision about ``/public/x``.
Refusing such requests would be as safe, but rewriting keeps one rule for every path: the
decision is about the resource served. (Proxy fronts cannot rewrite what the proxy
forwards, so there the canonicaliser refuses such paths instead: ``FrontConfig.resolve``.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policy.canonical import (
    FrontConfig,
    Refused,
    TrustedProxy,
    canonical_request,
    refused_request,
    served_path,
)
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
        # resolve: this front rewrites the scope to the decided path, so it may resolve dot segments.
        self.front = FrontConfig(proxies=self.proxies, service=self.service, resolve=True)

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
        # The app serves what was decided, never the unresolved target (see the module docstring).
        scope = {**scope, "path": req.path, "raw_path": served_path(req.path)}
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
