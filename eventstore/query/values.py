"""How query values are read per field type, the same way Elasticsearch reads them.

Hand-written because no library does these three things the way an ES 8 mapping does:

- ``analyze``: the ``standard`` analyzer of ``text`` fields (``message``), approximating
  Unicode word segmentation (UAX #29) for the ASCII found in logs: ``10.0.0.5``,
  ``example.com``, ``don't`` and ``ssh2`` stay one token, punctuation splits, lowercase.
- ``ip_key``: an address as 16 bytes (IPv4 mapped into IPv6), the order ES sorts ``ip``
  fields in, so ranges and CIDR blocks are byte ranges.
- ``parse_date``: ES ``strict_date_optional_time||epoch_millis`` with date math
  (``now-15m``, ``2024-01-01||+1d/d``); a value with missing parts (``2024-01-01``) is the
  span ES rounds it to, so ``@timestamp:2024-01-01`` is that day, and ``2024`` is its first day.
"""

from __future__ import annotations

import calendar
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

# -- text analysis ------------------------------------------------------------------------

_LETTER = r"[^\W\d_]"
_TOKEN = re.compile(
    rf"\w+(?:(?:(?<={_LETTER})[.:'\u2019](?={_LETTER})|(?<=\d)[.,;'](?=\d))\w+)*",
)


#: The standard tokenizer's ``max_token_length``: a longer word is split every 255 characters.
MAX_TOKEN_LENGTH = 255


@lru_cache(maxsize=65536)
def analyze(text: str) -> tuple[str, ...]:
    """Tokens of a ``text`` field value, lowercased, in order."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        token = m.group(0).lower()
        if len(token) <= MAX_TOKEN_LENGTH:
            out.append(token)
        else:
            out.extend(token[i:i + MAX_TOKEN_LENGTH] for i in range(0, len(token), MAX_TOKEN_LENGTH))
    return tuple(out)


def glob_to_regex(pattern: str) -> str:
    """A Lucene wildcard (``*``, ``?``, ``\\`` escapes) as an anchored Python regex."""
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"


def glob_to_sqlite(pattern: str) -> str:
    """A Lucene wildcard as a SQLite ``GLOB`` pattern (case-sensitive, like a keyword field)."""
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(f"[{ch}]" if ch in "*?[" else ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "*?":
            out.append(ch)
        elif ch == "[":
            out.append("[[]")
        else:
            out.append(ch)
    return "".join(out)


def unescape(value: str) -> str:
    """Lucene escapes: ``\\x`` is a literal ``x``."""
    return re.sub(r"\\(.)", r"\1", value)


def within_edits(a: str, b: str, limit: int) -> bool:
    """Damerau-Levenshtein distance (optimal string alignment, as Lucene's fuzzy query) <= limit."""
    if abs(len(a) - len(b)) > limit:
        return False
    if a == b:
        return True
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return False
        prev2, prev = prev, row
    return prev[-1] <= limit


def auto_edits(term: str) -> int:
    """ES ``fuzziness: AUTO``: no edit up to 2 characters, one up to 5, two beyond."""
    return 0 if len(term) <= 2 else (1 if len(term) <= 5 else 2)


def phrase_slop(positions: list[list[int]], limit: int) -> bool:
    """Whether tokens found at ``positions`` (one list per phrase token) form the phrase within
    ``limit`` moves: Lucene's measure, max(p_i - i) - min(p_i - i) over a choice of p_i, each
    position used once (``"port port"~1`` needs the word twice, as in Lucene)."""
    offsets = [[p - i for p in ps] for i, ps in enumerate(positions)]
    if not all(offsets):
        return False

    def place(i: int, low: int, used: set[int]) -> bool:
        if i == len(positions):
            return True
        for p in positions[i]:
            if p not in used and low <= p - i <= low + limit:
                used.add(p)
                if place(i + 1, low, used):
                    return True
                used.discard(p)
        return False

    # every candidate window starts at some offset; check if each token has its own position in it
    return any(place(0, low, set()) for low in sorted({o for os_ in offsets for o in os_}))


# -- IP addresses -------------------------------------------------------------------------

_V4_PREFIX = b"\x00" * 10 + b"\xff\xff"


@lru_cache(maxsize=65536)
def ip_key(text: object) -> bytes | None:
    """16 sortable bytes of an address, or ``None`` if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if addr.version == 4:
        return _V4_PREFIX + addr.packed
    mapped = addr.ipv4_mapped  # type: ignore[union-attr]
    return _V4_PREFIX + mapped.packed if mapped else addr.packed


def canonical_ip(text: str) -> str:
    """The one spelling ES returns and collectors write (``::ffff:1.2.3.4`` is ``1.2.3.4``)."""
    addr = ipaddress.ip_address(text)
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped or addr)


def ip_block(text: str) -> tuple[bytes, bytes]:
    """First and last key of a CIDR block (``10.0.0.0/8``) or of one address."""
    net = ipaddress.ip_network(text, strict=False)
    lo, hi = net.network_address, net.broadcast_address
    if net.version == 4:
        return _V4_PREFIX + lo.packed, _V4_PREFIX + hi.packed
    return lo.packed, hi.packed


def ipv4_prefix(low: str, high: str) -> str | None:
    """The dotted text shared by every IPv4 address from ``low`` to ``high`` (``10.1.``), if any."""
    try:
        lo, hi = ipaddress.ip_address(low), ipaddress.ip_address(high)
    except ValueError:
        return None
    if lo.version != 4 or hi.version != 4:
        return None
    shared = []
    for a, b in zip(str(lo).split("."), str(hi).split("."), strict=True):
        if a != b:
            break
        shared.append(a)
    return ".".join(shared) + "." if shared and len(shared) < 4 else None


# -- dates --------------------------------------------------------------------------------

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?)?)?)?"
    r"(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_MATH = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class DateSpan:
    """The first and last millisecond a date value names (equal when it names an instant)."""

    start: int
    end: int


def _tz(text: str | None) -> timezone:
    if not text or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _add_months(ts: datetime, months: int) -> datetime:
    total = ts.year * 12 + ts.month - 1 + months
    year, month = divmod(total, 12)
    day = min(ts.day, calendar.monthrange(year, month + 1)[1])
    return ts.replace(year=year, month=month + 1, day=day)


def _shift(ts: datetime, amount: int, unit: str) -> datetime:
    if unit == "y":
        return _add_months(ts, 12 * amount)
    if unit == "M":
        return _add_months(ts, amount)
    seconds = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
    return ts + timedelta(seconds=seconds * amount)


def _floor(ts: datetime, unit: str) -> datetime:
    if unit == "y":
        return ts.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "M":
        return ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())
    if unit == "d":
        return ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in "hH":
        return ts.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return ts.replace(second=0, microsecond=0)
    return ts.replace(microsecond=0)


def _span_unit(groups: dict[str, str | None]) -> str | None:
    """How far a value without its smaller parts reaches, as Elasticsearch rounds it up: missing
    time parts reach the end of the last one given, but a missing day or month does not reach
    the end of the month or year (``2023`` and ``2023-01`` end with 2023-01-01; measured on 8.19)."""
    for name, unit in (("f", None), ("s", "s"), ("mi", "m"), ("h", "h")):
        if groups[name] is not None:
            return unit
    return "d"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(ts: datetime) -> int:
    """Exact epoch milliseconds (``timestamp() * 1000`` can land a float a hair below)."""
    return (ts - _EPOCH) // _MS


def parse_date(text: str, now: datetime) -> DateSpan:
    """An ES date value (see module docstring) as the span of milliseconds it names."""
    text = text.strip()
    anchor_text, sep, math = text.partition("||")
    if not sep and text.startswith("now"):
        anchor_text, math = "now", text[3:]
    if anchor_text == "now":
        start = now.astimezone(UTC)
        unit: str | None = None
    else:
        m = _DATE.match(anchor_text)
        if m is None:
            if anchor_text.lstrip("-").isdigit():
                ms = int(anchor_text)
                start, unit = datetime.fromtimestamp(ms / 1000, UTC), None
            else:
                raise ValueError(f"not a date: {text!r} (expected ISO 8601, epoch millis or now-15m)")
        else:
            g = m.groupdict()
            frac = (g["f"] or "0")[:6].ljust(6, "0")
            start = datetime(
                int(g["y"]), int(g["mo"] or 1), int(g["d"] or 1), int(g["h"] or 0), int(g["mi"] or 0),
                int(g["s"] or 0), int(frac), tzinfo=_tz(g["tz"]),
            )
            unit = _span_unit(g)
    end = start
    if unit is not None:
        end = _shift(start, 1, unit) - _MS
    pos = 0
    while pos < len(math):
        step = _MATH.match(math, pos)
        if step is None:
            raise ValueError(f"bad date math in {text!r} at {math[pos:]!r}")
        if step.group(4):
            start = _floor(start, step.group(4))
            end = _shift(start, 1, step.group(4)) - _MS
        else:
            amount = int(step.group(2)) * (-1 if step.group(1) == "-" else 1)
            start = _shift(start, amount, step.group(3))
            end = _shift(end, amount, step.group(3))
        pos = step.end()
    return DateSpan(_ms(start), _ms(end))


def epoch_ms(value: object) -> int | None:
    """A stored date (ISO string or epoch millis) as epoch milliseconds, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        return None
    return _epoch_ms_str(value)


@lru_cache(maxsize=65536)
def _epoch_ms_str(value: str) -> int | None:
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        m = _DATE.match(value)
        if m is None:
            return int(value) if value.lstrip("-").isdigit() else None
        g = m.groupdict()
        ts = datetime(
            int(g["y"]), int(g["mo"] or 1), int(g["d"] or 1), int(g["h"] or 0), int(g["mi"] or 0),
            int(g["s"] or 0), int((g["f"] or "0")[:6].ljust(6, "0")), tzinfo=_tz(g["tz"]),
        )
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return _ms(ts)
