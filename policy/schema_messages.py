"""Policy schema errors in words an admin reads: where (the rule's name), what is wrong, what to write.

jsonschema's own messages name JSON Schema keywords ("Additional properties are not
allowed", "does not match '^([01][0-9]|2[0-3]):[0-5][0-9]$'"); an admin who wrote
``from: 9am`` needs "use HH:MM (24-hour), e.g. 09:00". One function per validator
keyword, and hints for the patterns the schema uses; anything unknown falls back to
jsonschema's text, so no error is ever hidden.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

#: What a value matching each schema pattern looks like, keyed by the pattern itself.
PATTERN_HINTS = {
    "^([01][0-9]|2[0-3]):[0-5][0-9]$": "use HH:MM, 24-hour (e.g. 09:00)",
    "^([01][0-9]|2[0-4]):[0-5][0-9]$": "use HH:MM, 24-hour (e.g. 17:30; 24:00 for midnight)",
    "^[a-z0-9][a-z0-9._-]{0,127}$": "use lower-case letters, digits, '.', '_' and '-' (up to 128, starting "
                                    "with a letter or digit)",
    "^(/|\\*)": "a path starts with '/' (or is '*')",
}
_TYPES = {"array": "a list", "object": "a mapping (key: value)", "string": "text", "integer": "a whole number",
          "number": "a number", "boolean": "true or false", "null": "empty"}


def _q(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def where(doc: Any, path: Sequence[Any]) -> str:
    """``rule 'r1': when.time`` for ``rules/0/when/time``; ``(top)`` for the document itself."""
    parts = list(path)
    prefix = ""
    if len(parts) >= 2 and parts[0] == "rules" and isinstance(parts[1], int):
        rule = doc.get("rules", [])[parts[1]] if isinstance(doc, dict) else None
        name = rule.get("name") if isinstance(rule, dict) else None
        prefix = f"rule '{name}'" if isinstance(name, str) else f"rule #{parts[1] + 1}"
        parts = parts[2:]
    rest = ""
    for p in parts:
        rest += f"[{p}]" if isinstance(p, int) else (f".{p}" if rest else str(p))
    if prefix and rest:
        return f"{prefix}: {rest}"
    return prefix or rest or "(top)"


def _additional(err: Any) -> str:
    allowed = sorted((err.schema.get("properties") or {}).keys())
    extra = [k for k in err.instance if k not in allowed] if isinstance(err.instance, dict) else []
    return "; ".join(f"unknown key {_q(k)}{_suggest(str(k), allowed)}" for k in extra) + \
        (f" (allowed here: {', '.join(allowed)})" if allowed else "")


def _enum(err: Any) -> str:
    options = [str(o) for o in err.validator_value]
    return f"{_q(err.instance)} is not allowed here{_suggest(str(err.instance), options)}: use one of " \
        + ", ".join(options)


def _pattern(err: Any) -> str:
    hint = PATTERN_HINTS.get(err.validator_value, "it does not have the expected form")
    return f"{_q(err.instance)}: {hint}"


def _required(err: Any) -> str:
    missing = [k for k in err.validator_value if not isinstance(err.instance, dict) or k not in err.instance]
    return "missing " + ", ".join(f"'{k}'" for k in missing)


def _type(err: Any) -> str:
    want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
    return f"{_q(err.instance)} should be " + " or ".join(_TYPES.get(str(t), str(t)) for t in want)


def _min_items(err: Any) -> str:
    return f"needs at least {err.validator_value} entr{'y' if err.validator_value == 1 else 'ies'}"


def _min_properties(err: Any) -> str:
    allowed = sorted((err.schema.get("properties") or {}).keys())
    return "is empty: give " + (f"at least one of {', '.join(allowed)}" if allowed else "a value")


def _dependent(err: Any) -> str:
    pairs = [f"'{k}' needs {', '.join(repr(v) for v in need)} too" for k, need in err.validator_value.items()
             if isinstance(err.instance, dict) and k in err.instance and any(v not in err.instance for v in need)]
    return "; ".join(pairs) or err.message


def _minimum(err: Any) -> str:
    return f"{_q(err.instance)} is too small: at least {err.validator_value}"


MESSAGES: dict[str, Callable[[Any], str]] = {
    "additionalProperties": _additional, "enum": _enum, "pattern": _pattern, "required": _required,
    "type": _type, "minItems": _min_items, "minProperties": _min_properties, "dependentRequired": _dependent,
    "minimum": _minimum,
}


def admin_message(doc: Any, err: Any) -> str:
    """``where: what`` for one jsonschema ``ValidationError``."""
    fmt = MESSAGES.get(err.validator)
    try:
        what = fmt(err) if fmt is not None else err.message
    except Exception:  # an odd instance shape: jsonschema's own words rather than none
        what = err.message
    return f"{where(doc, err.absolute_path)}: {what}"
