"""Text the store cannot encode: lone UTF-16 surrogates (``"\\ud800"`` in a JSON line, a
Windows name decoded badly) are valid Python ``str`` but not UTF-8, so SQLite cannot bind
them and orjson refuses them. Both backends store such an event with each bad code point
replaced by U+FFFD and the event marked (``tags``: :data:`REPLACED_TAG`), never a batch
that fails forever and never an event refused for its text.
"""

from __future__ import annotations

from typing import Any

#: the tag of an event whose text had code points replaced to be stored
REPLACED_TAG = "ztsoc-text-replaced"
#: nesting followed at most (deeper values are kept as they are: the encoder then says why)
_MAX_DEPTH = 64


def _clean(value: Any, depth: int) -> tuple[Any, bool]:
    if value.__class__ is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # UTF-16 round trip: a valid surrogate pair becomes its character, a lone one U+FFFD
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), True
        return value, False
    if depth >= _MAX_DEPTH:
        return value, False
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            k2, c1 = _clean(k, depth + 1)
            v2, c2 = _clean(v, depth + 1)
            out[k2] = v2
            changed = changed or c1 or c2
        return (out, True) if changed else (value, False)
    if isinstance(value, list | tuple):
        items = [_clean(v, depth + 1) for v in value]
        if any(c for _, c in items):
            return [v for v, _ in items], True
        return value, False
    return value, False


def replace_unencodable(doc: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of ``doc`` with unencodable code points replaced and the event tagged, or ``None``
    when every string of it encodes (the common case: nothing is copied)."""
    cleaned, changed = _clean(doc, 0)
    if not changed:
        return None
    tags = cleaned.get("tags")
    tags = [tags] if isinstance(tags, str) else list(tags) if isinstance(tags, list) else []
    if REPLACED_TAG not in tags:
        tags.append(REPLACED_TAG)
    cleaned["tags"] = tags
    return dict(cleaned)
