"""The dashboard's trust boundary: every request passes here before any handler runs.

In this order (ARCHITECTURE.md, "the analyst's browser"):

1. ``Host`` must be on the allow-list (``dashboards.hosts``): DNS rebinding ends here.
2. Who is asking: a personal token as ``Authorization: Bearer`` (scripts), or the session
   cookie; on loopback with no analyst tokens in the store, the local OS user. Without one
   of them in token mode, ``/api`` answers 401 (the page, its files and ``/healthz`` are
   public: they hold no data). ``GET /?token=...`` signs in: a session cookie
   (``HttpOnly; SameSite=Strict``) and a redirect to the same URL without the token; the
   session the browser had before ends. Only a navigation the analyst started (``Sec-Fetch-Site``
   ``none``: typed, pasted, a bookmark; or ``same-origin``) signs in: another site sending the
   browser to a link with *its* token would otherwise sign the analyst in as someone else, and
   their acks and notes would be recorded under that name (login CSRF, audit finding 3). Without
   the header the sign-in goes ahead: browsers send Fetch Metadata only to trustworthy origins
   (loopback, HTTPS), so over plain HTTP beyond loopback every browser's sign-in lacks it, as
   does a script's; refusing those would lock everyone out, and there the residual risk is a
   browser with no session being signed in as the attacker, which its header then shows.
3. A state-changing request (anything but GET/HEAD) needs ``Content-Type: application/json``
   (form and ``text/plain`` encodings are what other origins can send without asking),
   an ``Origin`` equal to the dashboard's own when a browser sends one, a ``Sec-Fetch-Site``
   of ``same-origin`` when it sends that, and, for a cookie session, the session's CSRF token
   in ``X-CSRF-Token``.
4. Every response carries the security headers (CSP with ``frame-ancestors 'none'``,
   ``nosniff``, ``Referrer-Policy: no-referrer``, CORP/COOP same-origin, ``no-store``),
   including the 500 for an error no handler expected: the guard answers it itself (one
   line in the log, no traceback an outside page could print on the server's terminal at will),
   since Starlette's own error page sits outside this middleware.

The local user (loopback, no tokens) has a stateless session (``Sessions.local``): its
cookie is minted only for the page itself (a navigation or a same-origin read of ``/`` or
``/api/session``), and nothing is stored, so another page's requests cannot evict it.

Hand-written as one small ASGI middleware: Starlette's ``TrustedHostMiddleware`` cannot say
"127.0.0.0/8", and its ``SessionMiddleware`` signs client-side cookies that cannot be revoked.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from dashboards import analysts
from dashboards.hosts import HostAllowList
from dashboards.i18n import Says, display_language, says
from dashboards.sessions import COOKIE, Session, Sessions, cookie_header, new_id
from eventstore.store import Store
from locales import N_

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("ztsoc.dashboard")

SAFE_METHODS = frozenset({"GET", "HEAD"})
#: ``Sec-Fetch-Site`` of a request the analyst's own page or hand started
OWN_SITES = frozenset({"none", "same-origin"})
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
        started = False

        async def send_secure(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in SECURITY_HEADERS if k not in names)]
            await send(message)

        try:
            await self._guarded(scope, receive, send_secure)
        except Exception as exc:
            # repr(): the exception may quote a client's value, and this line reaches the terminal
            log.error("internal error on %s %r: %r", scope.get("method"), scope.get("path"), exc)
            log.debug("internal error", exc_info=True)
            if not started:
                await _json(send_secure, 500, says(N_("internal error (the server's log has a line about it)"))
                            .body(display_language(Headers(scope=scope))))

    async def _guarded(self, scope: Scope, receive: Receive, send_secure: Send) -> None:
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
            await self._sign_in(headers, params, send_secure, lang)
            return
        cookie_id = _cookie(headers)
        actor = await self._actor(headers, token_mode, cookie_id)
        if actor is None and token_mode and not (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)):
            await _json(send_secure, 401, says(N_("sign in with your personal link (/?token=...): "
                                                  "soc dashboard token add NAME")).body(lang))
            return
        if actor is None and not token_mode:  # loopback without analyst tokens: the local OS user
            actor = Actor(self.local_actor, "local", self.sessions.local(cookie_id, self.local_actor)
                          if cookie_id else None)
        if method not in SAFE_METHODS:
            refusal = self._refuse_write(scope, headers, actor)
            if refusal:
                log.warning("refused %s %r: %s", method, path, refusal.english())
                await _json(send_secure, 403, refusal.body(lang))
                return
        state = scope.setdefault("state", {})
        state["token_mode"] = token_mode
        if (actor is not None and actor.how == "local" and actor.session is None and path in ("/", "/api/session")
                and headers.get("sec-fetch-site", "none") in OWN_SITES):
            # the page's own session (its CSRF token); stateless, so minting one costs nothing to keep
            session = self.sessions.local(new_id(), self.local_actor)
            assert session is not None
            state["actor"] = Actor(session.analyst, "local", session)
            await self.app(scope, receive, _with_cookie(send_secure, session))
            return
        state["actor"] = actor
        await self.app(scope, receive, send_secure)

    async def _actor(self, headers: Headers, token_mode: bool, cookie_id: str | None) -> Actor | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            found = await self._io(analysts.verify, self.store, auth[7:].strip())
            return Actor(found[0], "token") if found else None
        session = self.sessions.get(cookie_id)
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

    async def _sign_in(self, headers: Headers, params: dict[str, str], send: Send, lang: str | None) -> None:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in OWN_SITES:  # another site sent the browser here: login CSRF
            refusal = says(N_("sign-in refused: the link was opened from another site (Sec-Fetch-Site {site}); "
                              "open it yourself, from the address bar"), site=repr(site))
            log.warning("refused sign-in: %s", refusal.english())
            await _json(send, 403, refusal.body(lang))
            return
        found = await self._io(analysts.verify, self.store, params.pop("token"))
        if found is None:
            await _json(send, 401, says(N_("unknown or revoked token")).body(lang))
            return
        old = _cookie(headers)
        if old:
            self.sessions.end(old)  # whoever this browser was signed in as before, that session is over
        session = self.sessions.start(found[0], found[1])
        location = "/" + ("?" + urlencode(params) if params else "")
        await _with_cookie(send, session)({"type": "http.response.start", "status": 303,
                                           "headers": [(b"location", location.encode()),
                                                       (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def _cookie(headers: Headers) -> str | None:
    """The session cookie's value, parsed as browsers write cookies (Starlette's ``cookie_parser``):
    ``http.cookies.SimpleCookie`` stops at the first cookie it cannot parse, so another local
    app's ``junk=a"b`` on the same host hid the session (audit finding 5)."""
    return cookie_parser(headers.get("cookie", "")).get(COOKIE) or None


def _with_cookie(send: Send, session: Session) -> Send:
    cookie = cookie_header(session.id)

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
