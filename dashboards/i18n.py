"""The dashboard's language: which one a request gets, and everything the page needs to speak it.

Which language: the signed-in analyst's own choice (kept with the analyst in the store,
``dashboards.analysts.language_of``), else the server's ``SOC_LANG`` / ``LANGUAGE`` /
``LC_ALL`` / ``LANG`` when one names a language we have (``C``/``POSIX`` name none), else
the browser's ``Accept-Language``; English when nothing matches. Only ``en`` and ``vi``.

The server renders the page in that language (``templates/index.html``, Jinja2 with
autoescape) and embeds, as a JSON data block the script reads (never executed, so the CSP
stays ``script-src 'self'``), the messages the script shows, the display names of levels,
statuses and rule titles, and the locale's number symbols and date patterns taken from
Babel's CLDR data. The script formats with those (the browser tests check it agrees with
Babel on generated values); the JSON API itself stays locale-free.

Thread safety: a request never calls ``locales.set_language`` (a process-wide choice for
the CLI); it uses ``locales.translations(lang)`` and Babel with an explicit locale.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from babel import Locale
from babel.dates import get_datetime_format, tokenize_pattern
from babel.numbers import get_decimal_symbol, get_group_symbol

from detections.guides import fill, rule_guide
from locales import ENV_VARS, LANGUAGES, N_, SOURCE_LANGUAGE, normalise, overlay_in, translations

#: the language picker's entries: each language named in itself, never translated
NATIVE_NAMES: dict[str, str] = {"en": "English", "vi": "Tiếng Việt"}
MAX_ACCEPT_LANGUAGE = 512

#: stored values -> their display name (the value itself stays in queries, filters and the API)
VALUE_LABELS: dict[str, str] = {
    "critical": N_("critical"), "high": N_("high"), "medium": N_("medium"), "low": N_("low"),
    "informational": N_("informational"), "none": N_("none"),
    "open": N_("open"), "acknowledged": N_("acknowledged"), "escalated": N_("escalated"), "closed": N_("closed"),
    "true_positive": N_("true positive"), "false_positive": N_("false positive"), "benign": N_("benign"),
    "duplicate": N_("duplicate"), "allow": N_("allowed"), "deny": N_("denied"),
    "ack": N_("ack"), "escalate": N_("escalate"), "assign": N_("assign"), "close": N_("close"),
    "reopen": N_("reopen"), "note": N_("note"), "success": N_("success"), "failure": N_("failure"), "unknown": N_("unknown"),
}

#: what the script shows, by key (app.js: ``t("key", {n: 3})``); ``{name}`` fields are filled there
MESSAGES: dict[str, str] = {
    "acting_as": N_("acting as {analyst} (local user: loopback, no analyst tokens)"),
    "signed_in_as": N_("signed in as {analyst}"),
    "not_signed_in": N_("not signed in: open your personal link (soc dashboard token add NAME)"),
    "nothing_here": N_("nothing here"),
    "loading": N_("loading…"),
    "updated": N_("updated {time}"),
    "error": N_("error: {message}"),
    "done": N_("{action}: done"),
    "failed": N_("{action}: {message}"),
    "language_saved": N_("language saved"),
    "alerts": N_("alerts"), "flows": N_("flows"),
    "entity_risk": N_("entity risk"),
    "risk_line": N_("{score} ({band}) from {n} unresolved alert(s)"),
    "evidence_count": N_("({shown} of {total} events, the decisive ones first)"),
    "what_rule_looks_at": N_("what the rule looks at"),
    "what_happened": N_("what happened"), "link": N_("link"),
    # column headings
    "rule": N_("rule"), "entity": N_("entity"), "risk": N_("risk"), "band": N_("band"),
    "open_alerts": N_("open alerts"), "dataset": N_("dataset"), "events": N_("events"),
    "last_event": N_("last event"), "source": N_("source"), "bytes": N_("bytes"), "peers": N_("peers"),
    "name": N_("name"), "queries": N_("queries"), "domain": N_("domain"), "distinct_names": N_("distinct names"),
    "server_name": N_("server name"), "handshakes": N_("handshakes"), "caller": N_("caller"),
    "service": N_("service"), "denials": N_("denials"), "identity": N_("identity"), "time": N_("time"),
    "who": N_("who"), "change": N_("change"), "trainee": N_("trainee"), "exercise": N_("exercise"),
    "score": N_("score"), "hints": N_("hints"), "seconds": N_("time (s)"), "action": N_("action"),
    "note": N_("note"),
    # the API's refusals, by HTTP status: the page's own sentence, then the server's detail
    "http_400": N_("the request was refused"), "http_401": N_("not signed in"),
    "http_403": N_("refused"), "http_404": N_("not found"), "http_409": N_("not possible in this state"),
    "http_413": N_("too large"), "http_421": N_("wrong Host name"), "http_503": N_("the store is not answering"),
}

#: ECS field -> the name an analyst reads (the raw field stays on hover and in data-field)
FIELD_LABELS: dict[str, str] = {
    "@timestamp": N_("time"), "event.id": N_("id"), "event.dataset": N_("dataset"), "event.action": N_("action"),
    "event.outcome": N_("outcome"), "event.code": N_("event code"), "source.ip": N_("source address"),
    "destination.ip": N_("destination address"), "destination.port": N_("destination port"),
    "user.name": N_("account"), "user.target.name": N_("target account"), "host.name": N_("host"),
    "process.command_line": N_("command line"), "process.name": N_("process"), "dns.question.name": N_("DNS name"),
    "url.path": N_("URL path"), "http.request.method": N_("HTTP method"),
    "tls.client.server_name": N_("TLS server name"), "service.name": N_("service"), "rule.name": N_("rule"),
    "threat.technique.id": N_("ATT&CK technique"), "ztsoc.alert.level": N_("level"),
    "ztsoc.alert.status": N_("status"), "ztsoc.alert.assignee": N_("assignee"),
    "ztsoc.alert.close_reason": N_("close reason"), "ztsoc.alert.entity.value": N_("entity"),
    "ztsoc.alert.first_seen": N_("first seen"), "ztsoc.alert.last_seen": N_("last seen"),
    "event.reason": N_("reason"), "network.transport": N_("transport"), "winlog.computer_name": N_("computer"),
    "winlog.event_data.SubjectUserName": N_("acting account"), "winlog.event_data.SubjectUserSid": N_("acting account SID"),
    "ztsoc.policy.authenticated": N_("authenticated"),
}

def _plural_forms(lang: str) -> dict[str, list[str]]:
    """A count and its noun in both gettext forms for ``n == 1`` and ``n == 2``; the script picks the
    first for 1 (English's rule; Vietnamese has one form, so both are the same)."""
    tr = translations(lang)
    return {"alert_total": [tr.ngettext("{n} alert", "{n} alerts", n) for n in (1, 2)]}


def _base(tag: str) -> str:
    return tag.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].strip().lower()


def server_language(environ: Mapping[str, str] | None = None) -> str | None:
    """The language the server's environment asks for, or None (unset, ``C``/``POSIX``, or one we lack)."""
    env = os.environ if environ is None else environ
    for var in ENV_VARS:
        value = env.get(var) or ""
        if any(_base(part) in ("c", "posix") for part in value.split(":")):
            continue
        lang = normalise(value)
        if lang:
            return lang
    return None


def accept_language(header: str | None) -> str:
    """The first of ``en``/``vi`` by the header's q-values (``vi-VN,vi;q=0.9,en;q=0.8``); English otherwise.

    Hand-written (a few lines; Babel's ``Locale.negotiate`` takes an ordered list, not the
    header): bounded in length and entries, a malformed part is skipped.
    """
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "")[:MAX_ACCEPT_LANGUAGE].split(",")[:32]):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        params = params.strip().replace(" ", "")
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        lang = _base(tag) if tag.strip() != "*" else None
        if lang in LANGUAGES and 0.0 < q <= 1.0:
            ranked.append((-q, i, lang))
    return min(ranked)[2] if ranked else SOURCE_LANGUAGE


def request_language(chosen: str | None, server: str | None, header: str | None) -> str:
    """The analyst's choice, else the server's, else the browser's."""
    return normalise(chosen) or server or accept_language(header)


# -- error messages --------------------------------------------------------------------------------------------
#: the page asks for its errors in its language with this header; a script never sends it, so the API's
#: answers stay the same bytes for it (``error`` is always English; ``message`` only when asked)
DISPLAY_HEADER = "x-display-language"


def display_language(headers: Mapping[str, str]) -> str | None:
    """The language the page asked its error messages in, or None (English, or not asked)."""
    value = headers.get(DISPLAY_HEADER)
    return value if value in LANGUAGES and value != SOURCE_LANGUAGE else None


@dataclass(frozen=True)
class Says:
    """An error the dashboard itself says: an English template (a catalog message) and its values."""

    template: str
    values: Mapping[str, object]

    def english(self) -> str:
        return self.template.format(**self.values)

    def body(self, lang: str | None) -> dict[str, str]:
        body = {"error": self.english()}
        if lang:
            body["message"] = translations(lang).gettext(self.template).format(**self.values)
        return body


def says(template: str, **values: object) -> Says:
    return Says(template, values)


class Refused(ValueError):
    """A request value the dashboard refuses (a 400), in the dashboard's own catalog words.

    Raised by ``dashboards.views`` where a parameter is checked, so the message names the
    parameter and comes back in the page's language; a ValueError, so a caller that knows
    only that still answers 400."""

    def __init__(self, said: Says) -> None:
        super().__init__(said.english())
        self.says = said


def raised_body(text: str, lang: str | None) -> dict[str, str]:
    """An error raised below the dashboard (the store, the alert lifecycle, a query), as the API answers it."""
    from locales.raised import translated

    return {"error": text, **({"message": translated(text, lang=lang)} if lang else {})}


# -- dates and numbers (Babel's CLDR data, handed to the script as tokens) ------------------------------------
FIELDS = frozenset("dMyHms")


def _padded(pattern: str) -> list[list[str]]:
    """A CLDR pattern as tokens, numeric fields widened (``d/M/y`` -> ``dd/MM/yyyy``).

    Widened so a column of dates lines up (``05/03/2026`` under ``12/11/2026``); the order
    and separators stay the locale's. Only numeric day/month/year/hour/minute/second fields
    are allowed: the script formats exactly these (a pattern with another field fails here,
    at start-up, not in the browser).
    """
    out: list[list[str]] = []
    for kind, value in tokenize_pattern(pattern):
        if kind == "chars":
            out.append(["chars", str(value)])
            continue
        char, count = str(value[0]), int(value[1])
        if char not in FIELDS or (char == "M" and count > 2):
            raise ValueError(f"date pattern {pattern!r}: field {char * count!r} is not numeric")
        out.append(["field", char * (4 if char == "y" else max(2, count))])
    return out


def date_patterns(lang: str) -> dict[str, str]:
    """The CLDR patterns the page uses: a date and time, a short one for chart axes, a time (all UTC).

    From the locale's skeletons ``yMd``, ``Md`` and ``Hm`` joined by its own date-time format:
    a 24-hour clock in every language, as a SOC's logs and shifts are kept."""
    skeletons = Locale.parse(lang).datetime_skeletons
    join = str(get_datetime_format("short", lang))
    time = str(skeletons["Hm"])
    return {"datetime": join.replace("{1}", str(skeletons["yMd"])).replace("{0}", time),
            "short": join.replace("{1}", str(skeletons["Md"])).replace("{0}", time), "time": time}


def locale_formats(lang: str) -> dict[str, Any]:
    pats = date_patterns(lang)
    return {"decimal": get_decimal_symbol(lang), "group": get_group_symbol(lang),
            "datetime": _padded(pats["datetime"]), "short": _padded(pats["short"]),
            "time": _padded(pats["time"])}


def padded_pattern(tokens: list[list[str]]) -> str:
    """The tokens back as a CLDR pattern (for Babel's ``format_datetime`` in the tests)."""
    return "".join(v if k == "field" else "'" + v.replace("'", "''") + "'" for k, v in tokens)


# -- rule texts -------------------------------------------------------------------------------------------------
def rule_titles(lang: str) -> dict[str, str]:
    """rule id -> the rule's title in ``lang`` (the shipped rules that have one)."""
    return {rule_id: str(texts["title"]).strip() for rule_id, texts in overlay_in(lang, "rules").items()
            if isinstance(texts, dict) and texts.get("title")}


def guide_in(alert: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """The rule's guide for ``alert`` in ``lang``: its placeholders filled as in English."""
    doc = rule_guide(alert).to_doc()
    texts = overlay_in(lang, "rules").get(str(alert.get("rule.id"))) or {}
    if isinstance(texts, dict):
        if texts.get("guide"):
            doc["investigation"] = fill(str(texts["guide"]).strip(), alert)
        if texts.get("response"):
            steps = texts["response"] if isinstance(texts["response"], list) else [texts["response"]]
            doc["response"] = [fill(str(s).strip(), alert) for s in steps]
    return doc


# -- the page ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageText:
    """What ``templates/index.html`` needs: ``_`` for its own text, and the script's data block."""

    lang: str

    def gettext(self, message: str) -> str:
        return translations(self.lang).gettext(message)

    def value(self, stored: str) -> str:
        """A stored value's display name (``high`` -> ``cao``); unknown values as they are."""
        return self.gettext(VALUE_LABELS[stored]) if stored in VALUE_LABELS else stored

    def script_data(self) -> dict[str, Any]:
        return _script_data(self.lang)

    def languages(self) -> list[tuple[str, str]]:
        return [(code, NATIVE_NAMES[code]) for code in LANGUAGES]


@lru_cache(maxsize=len(LANGUAGES))
def _script_data(lang: str) -> dict[str, Any]:
    tr = translations(lang)
    return {"lang": lang,
            "messages": {k: tr.gettext(v) for k, v in MESSAGES.items()},
            "plurals": _plural_forms(lang),
            "values": {k: tr.gettext(v) for k, v in VALUE_LABELS.items()},
            "fields": {k: tr.gettext(v) for k, v in FIELD_LABELS.items()},
            "rules": rule_titles(lang),
            "format": locale_formats(lang)}
