"""Signed-in browser sessions: a random id in an ``HttpOnly; SameSite=Strict`` cookie.

Token sessions (``GET /?token=...``) are kept in memory, server-side rather than in a
signed cookie, so a session can end (sign-out, revoked token, expiry) and carries nothing a
client could alter. Bounded: at most ``MAX_SESSIONS``, and at most ``MAX_PER_ANALYST`` for
one analyst; when full, the least recently *used* goes first (``get`` counts as use), and an
analyst's own surplus goes before anyone else's, so one token holder signing in over and over
cannot push a colleague out. Each lives ``LIFETIME`` seconds. Every session has its own CSRF
token, which the page reads from ``/api/session`` (a same-origin read) and sends back in
``X-CSRF-Token``.

The local user on loopback without tokens has no server-side session at all (``local``):
any page could make the server mint one (a cross-site ``<img>`` carries no cookie), so
keeping them let another site push the analyst's session out with 1000 image requests
(audit finding 2). Its CSRF token is ``HMAC(process secret, cookie id)`` instead, the
"signed double-submit cookie": nothing to store, nothing to evict, and still readable only by
a page of the dashboard's own origin (``/api/session``). Eviction stays meaningful for token
sessions, which only a valid token can create.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

COOKIE = "ztsoc_session"
LIFETIME = 12 * 3600.0
MAX_SESSIONS = 1000
MAX_PER_ANALYST = 32
#: what ``new_id`` makes (``secrets.token_urlsafe(32)``: 43 characters); anything else is no session
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    analyst: str
    csrf: str
    token_hash: str | None  # None: the local user on loopback without tokens
    expires: float

    def csrf_matches(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), (given or "").encode())


def new_id() -> str:
    return secrets.token_urlsafe(32)


def cookie_header(session_id: str | None) -> bytes:
    """The ``Set-Cookie`` value: the session's id, or (``None``) one that ends the cookie now."""
    if session_id is None:
        return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict".encode()
    return f"{COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict".encode()


class Sessions:
    def __init__(self, lifetime: float = LIFETIME, limit: int = MAX_SESSIONS,
                 per_analyst: int = MAX_PER_ANALYST) -> None:
        self.lifetime, self.limit, self.per_analyst = lifetime, limit, per_analyst
        self._by_id: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(32)  # per process: a restart ends every local page's token too

    def start(self, analyst: str, token_hash: str | None) -> Session:
        session = Session(new_id(), analyst, secrets.token_urlsafe(32), token_hash, time.monotonic() + self.lifetime)
        with self._lock:
            own = [s.id for s in self._by_id.values() if s.analyst == analyst]
            for old in own[:max(0, len(own) - self.per_analyst + 1)]:
                del self._by_id[old]
            self._by_id[session.id] = session
            while len(self._by_id) > self.limit:
                self._by_id.popitem(last=False)
        return session

    def local(self, session_id: str, analyst: str) -> Session | None:
        """The local user's stateless session for a cookie id (None: not an id ``new_id`` could make)."""
        if not SESSION_ID.fullmatch(session_id):
            return None
        csrf = hmac.new(self._secret, b"local-csrf\x00" + session_id.encode(), hashlib.sha256).hexdigest()
        return Session(session_id, analyst, csrf, None, float("inf"))

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if session.expires < time.monotonic():
                del self._by_id[session_id]
                return None
            self._by_id.move_to_end(session_id)  # used: the last to be evicted
            return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)
