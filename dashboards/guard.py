"""The dashboard's trust boundary: every request passes here before any handler runs.

In this order (ARCHITECTURE.md, "the analyst's browser"):

1. ``Host`` must be on the allow-list (``dashboards.hosts``): DNS rebinding ends here.
2. Who is asking: a personal token as ``Authorization: Bearer`` (scripts), or the session
   cookie; on loopback with no analyst tokens in the store, the local OS user. Without one
   of them in token mode, ``/api`` answers 401 (the page, its files and ``/healthz`` are
   public: they hold no data). ``GET /?token=...`` signs in: a session cookie
   (``HttpOnly; SameSite=Strict``) and a redirect to the same URL without the token.
3. A state-changing request (anything but GET/HEAD) needs ``Content-Type: application/json``
   (form and ``text/plain`` encodings are what other origins can send without asking),
   an ``Origin`` equal to the dashboard's own when a browser sends one, a ``Sec-Fetch-Site``
   of ``same-origin`` when it sends that, and, for a cookie session, the session's CSRF token
   in ``X-CSRF-Token``.
4. Every response carries the security headers (CSP with ``frame-ancestors 'none'``,
   ``nosniff``, ``Referrer-Policy: no-referrer``, CORP/COOP same-origin, ``no-store``).

Hand-written as one small ASGI middleware: Starlette's ``TrustedHostMiddleware`` cannot say
"127.0.0.0/8", and its ``SessionMiddleware`` signs client-side cookies that cannot be revoked.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from dashboards import analysts
from dashboards.hosts import HostAllowList
from dashboards.i18n import Says, display_language, says
from dashboards.sessions import COOKIE, Session, Sessions
from eventstore.store import Store
from locales import N_

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("ztsoc.dashboard")

SAFE_METHODS = frozenset({"GET", "HEAD"})
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/", "/healthz", "/favicon.ico"})
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
     b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a request acts for, as the handlers see it (``request.state.actor``)."""

    name: str
    how: str  # "token", "session" or "local"
    session: Session | None = None


class Guard:
    """ASGI middleware: Host allow-list, sign-in, CSRF/Origin/JSON checks, security headers."""

    def __init__(self, app: ASGIApp, *, store: Store, lock: threading.Lock, hosts: HostAllowList,
                 sessions: Sessions, local_actor: str, loopback_bind: bool) -> None:
        self.app, self.store, self.lock, self.hosts = app, store, lock, hosts
        self.sessions, self.local_actor, self.loopback_bind = sessions, local_actor, loopback_bind

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        def locked() -> Any:
            with self.lock:
                return fn(*args)
        return await run_in_threadpool(locked)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in SECURITY_HEADERS if k not in names)]
            await send(message)

        headers = Headers(scope=scope)
        lang = display_language(headers)  # the page's language for the error message; "error" stays English
        if not self.hosts.allows(headers.get("host")):
            # repr() of every client-supplied value: the log reaches the server's terminal too
            log.warning("refused %s %r: Host %r is not allowed", scope["method"], scope["path"], headers.get("host"))
            await _json(send_secure, 421, says(N_("this dashboard does not answer to that Host name "
                                                  "(soc dashboard serve --allow-host NAME)")).body(lang))
            return
        method, path = scope["method"], scope["path"]
        token_mode = not self.loopback_bind or await self._io(analysts.any_tokens, self.store)
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if method == "GET" and path == "/" and "token" in params:
            await self._sign_in(scope, params, send_secure)
            return
        actor = await self._actor(headers, token_mode)
        if actor is None and token_mode and not (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)):
            await _json(send_secure, 401, says(N_("sign in with your personal link (/?token=...): "
                                                  "soc dashboard token add NAME")).body(lang))
            return
        if actor is None and not token_mode:  # loopback without analyst tokens: the local OS user
            actor = Actor(self.local_actor, "local")
        if method not in SAFE_METHODS:
            refusal = self._refuse_write(scope, headers, actor)
            if refusal:
                log.warning("refused %s %r: %s", method, path, refusal.english())
                await _json(send_secure, 403, refusal.body(lang))
                return
        state = scope.setdefault("state", {})
        state["token_mode"] = token_mode
        if actor is not None and actor.how == "local" and actor.session is None and path in ("/", "/api/session"):
            session = self.sessions.start(self.local_actor, None)  # the page's session: its CSRF token
            state["actor"] = Actor(session.analyst, "local", session)
            await self.app(scope, receive, _with_cookie(send_secure, session))
            return
        state["actor"] = actor
        await self.app(scope, receive, send_secure)

    async def _actor(self, headers: Headers, token_mode: bool) -> Actor | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            found = await self._io(analysts.verify, self.store, auth[7:].strip())
            return Actor(found[0], "token") if found else None
        session = self.sessions.get(_cookie(headers))
        if session is None:
            return None
        if session.token_hash is None:  # a local-user session is only good while there are no tokens
            return None if token_mode else Actor(session.analyst, "local", session)
        if not await self._io(analysts.still_valid, self.store, session.token_hash):
            self.sessions.end(session.id)  # the token was revoked
            return None
        return Actor(session.analyst, "session", session)

    def _refuse_write(self, scope: Scope, headers: Headers, actor: Actor | None) -> Says | None:
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return says(N_("state changes take Content-Type: application/json only"))
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        if origin is not None and origin.lower() != own:
            return says(N_("cross-origin request refused (Origin {origin})"), origin=repr(origin))
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site != "same-origin":
            return says(N_("cross-site request refused (Sec-Fetch-Site {site})"), site=repr(fetch_site))
        if actor is not None and actor.how == "token":  # Authorization: Bearer: never sent by another origin
            return None
        if actor is None or actor.session is None or not actor.session.csrf_matches(headers.get("x-csrf-token")):
            return says(N_("missing or wrong X-CSRF-Token (the page reads it from /api/session)"))
        return None

    async def _sign_in(self, scope: Scope, params: dict[str, str], send: Send) -> None:
        found = await self._io(analysts.verify, self.store, params.pop("token"))
        if found is None:
            await _json(send, 401, says(N_("unknown or revoked token")).body(None))
            return
        session = self.sessions.start(found[0], found[1])
        location = "/" + ("?" + urlencode(params) if params else "")
        await _with_cookie(send, session)({"type": "http.response.start", "status": 303,
                                           "headers": [(b"location", location.encode()),
                                                       (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def _cookie(headers: Headers) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is no session
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None


def _with_cookie(send: Send, session: Session) -> Send:
    cookie = f"{COOKIE}={session.id}; Path=/; HttpOnly; SameSite=Strict".encode()

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
        await send(message)
    return wrapped


async def _json(send: Send, status: int, data: Any) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
