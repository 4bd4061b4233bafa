"""Signed-in browser sessions: a random id in an ``HttpOnly; SameSite=Strict`` cookie, kept in memory.

Server-side rather than a signed cookie so a session can end (revoked token, expiry) and
carries nothing a client could alter. Bounded: at most ``MAX_SESSIONS``, the oldest go
first; each lives ``LIFETIME`` seconds. Every session has its own CSRF token, which the
page reads from ``/api/session`` (a same-origin read) and sends back in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

COOKIE = "ztsoc_session"
LIFETIME = 12 * 3600.0
MAX_SESSIONS = 1000


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    analyst: str
    csrf: str
    token_hash: str | None  # None: the local user on loopback without tokens
    expires: float

    def csrf_matches(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), (given or "").encode())


class Sessions:
    def __init__(self, lifetime: float = LIFETIME, limit: int = MAX_SESSIONS) -> None:
        self.lifetime, self.limit = lifetime, limit
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, analyst: str, token_hash: str | None) -> Session:
        session = Session(secrets.token_urlsafe(32), analyst, secrets.token_urlsafe(32), token_hash,
                          time.monotonic() + self.lifetime)
        with self._lock:
            self._by_id[session.id] = session
            while len(self._by_id) > self.limit:
                self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires < time.monotonic():
                del self._by_id[session_id]
                return None
            return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)
