"""Named analysts and their personal dashboard tokens, kept in the store (hashed).

``soc dashboard token add NAME`` makes a token and shows it once; the store keeps only
its SHA-256 (the token is 32 random bytes, so a fast hash is enough: there is nothing to
guess a dictionary from), with the name, when and by whom. Revoking deletes the hashes,
and every session signed in with them ends at its next request (``dashboards.guard``
checks the hash on each one).

Each analyst's dashboard language is kept beside the tokens, under the analyst's name
(``dashboard.analyst_prefs``), so it is the same from every browser and survives a new
token; the local OS user on loopback has one too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from eventstore.store import Store
from eventstore.timeutil import to_iso, utcnow

KIND = "dashboard.analyst_token"
PREFS_KIND = "dashboard.analyst_prefs"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True, slots=True)
class AnalystToken:
    name: str
    id: str  # the first 12 hex digits of the hash: enough to tell two tokens apart in a listing
    created: str
    created_by: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add(store: Store, name: str, *, created_by: str) -> str:
    """A new token for ``name`` (letters, digits, ``._@-``); returns the token itself, shown once."""
    if not NAME.fullmatch(name):
        raise ValueError(f"analyst name {name!r}: letters, digits and . _ @ - only (at most 64)")
    token = "ztd_" + secrets.token_urlsafe(32)
    h = digest(token)
    store.put_state(KIND, h, {"name": name, "created": to_iso(utcnow()), "created_by": created_by})
    return token


def listed(store: Store) -> list[AnalystToken]:
    return sorted((AnalystToken(str(v.get("name")), k[:12], str(v.get("created")), str(v.get("created_by")))
                   for k, v in store.list_state(KIND)), key=lambda t: (t.name, t.created))


def revoke(store: Store, name: str) -> int:
    """Delete every token of ``name`` (or the one whose id is ``name``); how many were deleted."""
    gone = 0
    for key, value in store.list_state(KIND):
        if value.get("name") == name or key[:12] == name:
            store.delete_state(KIND, key)
            gone += 1
    return gone


def any_tokens(store: Store) -> bool:
    return bool(store.list_state(KIND))


def verify(store: Store, token: str) -> tuple[str, str] | None:
    """(analyst name, token hash) for a valid token, None otherwise."""
    if not token or len(token) > 200:
        return None
    h = digest(token)
    record = store.get_state(KIND, h)
    if record is None:
        return None
    # the store looked the hash up; compare again in constant time so a backend's lookup is not the oracle
    return (str(record["name"]), h) if hmac.compare_digest(h, digest(token)) else None


def still_valid(store: Store, token_hash: str) -> bool:
    return store.get_state(KIND, token_hash) is not None


def language_of(store: Store, name: str) -> str | None:
    """The dashboard language ``name`` chose, or None (never chose: the server's or the browser's)."""
    record = store.get_state(PREFS_KIND, name)
    value = record.get("language") if record else None
    return str(value) if value else None


def set_language(store: Store, name: str, language: str, languages: tuple[str, ...]) -> None:
    """Remember ``name``'s dashboard language (one of ``languages``: the caller's own list)."""
    if language not in languages:
        raise ValueError(f"language {language!r}: expected one of {', '.join(languages)}")
    record = dict(store.get_state(PREFS_KIND, name) or {})
    record.update(language=language, changed=to_iso(utcnow()))
    store.put_state(PREFS_KIND, name, record)
