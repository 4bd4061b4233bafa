"""One id rule for every command: a whole ``event.id``, or any unique prefix of it as lists show.

Ids are long hashes and lists show the first 16 characters; an analyst copies what they see.
The same rule for events and alerts, in one place, so no command accepts prefixes where
another refuses them: the whole id first, else the documents whose id starts with the text;
one is the answer, several are named in the error so the analyst can pick.
"""

from __future__ import annotations

from eventstore.errors import AlertNotFound, StoreError
from eventstore.store import Doc, Index, Store

#: the shortest prefix looked up (shorter ones match too much to be what was meant)
MIN_PREFIX = 4
#: how many of the matching ids an ambiguity error names
SHOWN = 5


class IdNotFound(StoreError):
    """No event has this id or an id starting with it."""


class AmbiguousId(ValueError):
    """Several ids start with the text; ``matches`` holds some of them."""

    def __init__(self, text: str, kind: str, matches: list[str], total: int) -> None:
        more = f" and {total - len(matches)} more" if total > len(matches) else ""
        super().__init__(f"{kind} id prefix {text!r} is ambiguous: {', '.join(matches)}{more}")
        self.matches = matches


def resolve_id(store: Store, text: str, index: Index = "events") -> str:
    """The full ``event.id`` the text names in ``index``: itself, or the one id starting with it."""
    text = text.strip()
    kind = "alert" if index == "alerts" else "event"
    doc = store.get_alert(text) if index == "alerts" else store.get_event(text)
    if doc is not None:
        return text
    if len(text) >= MIN_PREFIX and all(c.isalnum() or c in "-_" for c in text):
        result = store.search(f"event.id:{text}*", index=index, limit=SHOWN, fields=["event.id"])
        ids = [str(h["event.id"]) for h in result.hits]
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise AmbiguousId(text, kind, ids, result.total)
    why = f"no {kind} with id {text!r}" + (f" (a prefix needs {MIN_PREFIX} characters)" if len(text) < MIN_PREFIX else "")
    raise AlertNotFound(why) if index == "alerts" else IdNotFound(why)


def find_event(store: Store, text: str) -> Doc:
    """The event a whole id or a unique prefix names."""
    event_id = resolve_id(store, text, "events")
    doc = store.get_event(event_id)
    if doc is None:  # removed between the two reads
        raise IdNotFound(f"no event with id {event_id!r}")
    return doc
