"""The one-line error a person reads, in the interface language, whatever package raised it.

Messages raised below the CLI are English (their text is their id: ``locales.raised``);
this is where they are translated, once, for every command and the TUI. An exception whose
text is put together from parts (a policy set's first problem and how many more, a query's
fault and its position) is rebuilt from those parts here: ``KINDS`` maps its class to how.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from locales import SOURCE_LANGUAGE, _, current_language, ngettext
from locales.raised import translated
from soc_cli.labels import label

__all__ = ["error_text", "raised_text"]


def raised_text(text: object) -> str:
    """A message that came from below the CLI (an exception's text, a problem's reason), translated."""
    return translated(str(text))


def issue_text(issue: Any) -> str:
    """A ``policy.language.Issue`` as ``file:line: error: message``, severity and message translated."""
    return f"{issue.file}:{issue.line}: {label(issue.severity)}: {raised_text(issue.message)}"


def _policy_error(exc: Any) -> str:
    if not exc.issues:
        return _("invalid policy")
    more = len(exc.issues) - 1
    tail = " " + ngettext("(and {n} more)", "(and {n} more)", more).format(n=more) if more else ""
    return issue_text(exc.issues[0]) + tail


def _query_error(exc: Any) -> str:
    reason = raised_text(exc.reason)
    if exc.position is None:
        return _("bad query: {reason}").format(reason=reason)
    return _("bad query at position {n}: {reason}").format(n=exc.position, reason=reason)


#: exception classes (by module and name, so that ``soc --help`` imports none of them) whose text
#: is built from parts -> how to say it again in the interface language
KINDS: dict[str, Callable[[Any], str]] = {
    "policy.language.PolicyError": _policy_error,
    "eventstore.errors.QuerySyntaxError": _query_error,
}


def error_text(exc: BaseException) -> str:
    """``exc``'s message in the interface language (English: exactly ``str(exc)``)."""
    for cls in type(exc).__mro__:
        say = KINDS.get(f"{cls.__module__}.{cls.__qualname__}")
        if say is not None:
            return say(exc) if current_language() != SOURCE_LANGUAGE else str(exc)
    return raised_text(exc)
