"""Alert exceptions: known-benign activity an analyst has vouched for, for a limited time.

An exception is a query over alert fields (``rule.id:ssh_bruteforce AND source.ip:10.0.0.9``)
with an owner, a reason and an expiry, kept in the store as state kind ``exception``.
The detection runner calls ``apply_exceptions`` on each batch of new alerts before
storing them: a match is marked ``ztsoc.alert.suppressed: true`` with the exception's id,
never dropped, so an exception that was too broad can be audited and undone. Expired
exceptions stop matching on their own; nobody has to remember to delete them.

Matching uses the store's own query language, evaluated by the embedded store on an
in-memory copy of the batch, so an exception means exactly what the same query means in
``soc alerts --query`` and in the impact preview (no second, hand-written evaluator to drift).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from eventstore.errors import StoreError
from eventstore.store import Doc, Store
from eventstore.timeutil import from_iso, parse_duration, to_iso, utcnow

log = logging.getLogger(__name__)

STATE_KIND = "exception"
SUPPRESSED = "ztsoc.alert.suppressed"
EXCEPTION_ID = "ztsoc.alert.exception_id"


@dataclass(frozen=True, slots=True)
class AlertException:
    id: str
    query: str
    owner: str
    reason: str
    expires: str
    created: str
    created_by: str

    def expires_at(self) -> datetime:
        return from_iso(self.expires)

    def active(self, now: datetime | None = None) -> bool:
        return self.expires_at() > (now or utcnow())

    def to_doc(self) -> Doc:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Doc) -> AlertException:
        return cls(**{name: str(doc[name]) for name in cls.__slots__})  # type: ignore[attr-defined]


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """``30d`` means thirty days from now (the future, unlike ``--since``); or an ISO time."""
    now = now or utcnow()
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        value = from_iso(text.strip())
    except ValueError as exc:
        raise ValueError(f"--expires: not a duration or time: {text!r} (expected e.g. 30d, 12h or 2026-12-31)") from exc
    if value <= now:
        raise ValueError(f"--expires: {text!r} is in the past")
    return value


def new_exception(query: str, *, owner: str, reason: str, expires: datetime, created_by: str,
                  now: datetime | None = None) -> AlertException:
    if not query.strip() or query.strip() == "*":
        raise ValueError("an exception needs a query narrower than '*': it would silence every alert")
    if not owner.strip():
        raise ValueError("an exception needs an --owner, who answers for it")
    if not reason.strip():
        raise ValueError("an exception needs a --reason")
    return AlertException(
        id=f"exc-{uuid.uuid4().hex[:10]}", query=query.strip(), owner=owner.strip(), reason=reason.strip(),
        expires=to_iso(expires), created=to_iso(now or utcnow()), created_by=created_by,
    )


def validate_query(store: Store, query: str) -> None:
    """Raise the store's ``QuerySyntaxError`` now, not at the next detection run."""
    store.count(query, index="alerts")


def save(store: Store, exc: AlertException) -> None:
    validate_query(store, exc.query)
    store.put_state(STATE_KIND, exc.id, exc.to_doc())


def delete(store: Store, exception_id: str) -> None:
    if store.get_state(STATE_KIND, exception_id) is None:
        raise ValueError(f"no exception with id {exception_id!r}")
    store.delete_state(STATE_KIND, exception_id)


def list_exceptions(store: Store, *, include_expired: bool = True,
                    now: datetime | None = None) -> list[AlertException]:
    out = []
    for _key, doc in store.list_state(STATE_KIND):
        try:
            exc = AlertException.from_doc(doc)
        except (KeyError, TypeError):
            continue  # a malformed state entry must not stop detection; `soc alerts exceptions` shows the rest
        if include_expired or exc.active(now):
            out.append(exc)
    return sorted(out, key=lambda e: e.created)


def active_exceptions(store: Store, now: datetime | None = None) -> list[AlertException]:
    return list_exceptions(store, include_expired=False, now=now)


def _matching_ids(alerts: Sequence[Doc], exceptions: Sequence[AlertException]) -> dict[str, str]:
    """alert id -> the first (oldest) exception whose query matches it."""
    from eventstore import open_store

    scratch = open_store("sqlite:///:memory:")
    try:
        scratch.put_alerts([dict(a) for a in alerts])
        found: dict[str, str] = {}
        for exc in exceptions:
            try:
                for doc in scratch.scan(exc.query, index="alerts", fields=["event.id"]):
                    found.setdefault(str(doc["event.id"]), exc.id)
            except StoreError as err:
                # one broken exception (saved by hand, or by an older version) must not stop detection
                log.warning("exception %s skipped: its query %r does not run: %s", exc.id, exc.query, err)
        return found
    finally:
        scratch.close()


def apply_exceptions(store: Store, alerts: Iterable[Doc], *, now: datetime | None = None) -> list[Doc]:
    """Mark the alerts an active exception covers as suppressed (still returned, still to be stored)."""
    batch = list(alerts)
    exceptions = active_exceptions(store, now)
    if not batch or not exceptions:
        return batch
    matched = _matching_ids(batch, exceptions)
    out: list[Doc] = []
    for alert in batch:
        exc_id = matched.get(str(alert.get("event.id")))
        if exc_id is not None:
            alert = {**alert, SUPPRESSED: True, EXCEPTION_ID: exc_id}
        out.append(alert)
    return out


@dataclass(frozen=True, slots=True)
class Impact:
    """How many past alerts an exception would have suppressed, and from which rules."""

    total: int
    open: int
    by_rule: list[dict[str, Any]]
    sample: list[Doc]


def impact(store: Store, query: str, since: datetime | None = None, *, sample_size: int = 10) -> Impact:
    total = store.count(query, since=since, index="alerts")
    still_open = store.count(f"({query}) AND ztsoc.alert.status:(open OR acknowledged OR escalated)",
                             since=since, index="alerts")
    by_rule = store.aggregate(["rule.name"], query=query, since=since, index="alerts", limit=20)
    sample = store.search(query, since=since, index="alerts", limit=sample_size, fields=[
        "event.id", "@timestamp", "rule.name", "ztsoc.alert.level", "ztsoc.alert.entity.value",
        "ztsoc.alert.status",
    ]).hits
    return Impact(total=total, open=still_open, by_rule=by_rule, sample=sample)
