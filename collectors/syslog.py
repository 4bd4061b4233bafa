"""Linux auth logs (``/var/log/auth.log``, ``/var/log/secure``) in RFC 3164 or RFC 5424 syslog.

Three header shapes are read, with or without a ``<PRI>``: RFC 5424 (``<34>1 2026-...Z
host app procid msgid [sd] msg``), the ISO-timestamped traditional format modern rsyslog
writes (``2026-11-25T10:00:00.123+01:00 host sshd[42]: msg``) and BSD / RFC 3164
(``Nov 25 10:00:00 host sshd[42]: msg``). The message itself goes to
``collectors.authmsg`` (shared with journald).

RFC 3164 lines carry neither year nor time zone. The zone is ``tz`` (default: this
machine's). The year is ``year`` if given, else the file's modification time's year,
minus one for a line that would otherwise lie more than two days after the file was last
written (December lines in a file closed in January). The rule looks at one line at a
time, so a resumed read dates every line exactly as a full read does.

Hand-written because the Python libraries for syslog parse network messages, not files
with a missing year; the regexes are anchored and cheap.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collectors.authmsg import RULES, read_message
from collectors.base import Event, pid_number
from collectors.lines import LineError, LineReader, utc_stamp

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), start=1)}
_PRI = r"(?:<(?P<pri>\d{1,3})>)?"
_TAG = r"(?:(?P<tag>[^\s\[:(]+(?:\([^)\s]*\))?)(?:\[(?P<pid>\d+)\])?: ?)?"
_SD = r'\[[^\s\]=]+(?:\s+[^\s=\]]+="(?:[^"\\]|\\.)*")*\s*\]'  # quoted values may hold "]"
RFC5424 = re.compile(_PRI + r"1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
                     r"(?P<sd>-|(?:" + _SD + r")+) ?(?P<msg>.*)$")
ISO = re.compile(_PRI + r"(?P<ts>(?P<minute>\d{4}-\d\d-\d\d[T ]\d\d:\d\d):(?P<second>\d\d)(?:\.(?P<fraction>\d+))?"
                 r"(?P<zone>Z|[+-]\d\d:?\d\d)?) (?P<host>\S+) "
                 + _TAG + r"(?P<msg>.*)$")
BSD = re.compile(_PRI + r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)(?:\.\d+)? "
                 r"(?P<host>\S+) " + _TAG + r"(?P<msg>.*)$")
_SD_ELEMENT = re.compile(r"\[([^\s\]=]+)((?:\s+[^\s=\]]+=\"(?:[^\"\\]|\\.)*\")*)\s*\]")
_SD_PARAM = re.compile(r"([^\s=\]]+)=\"((?:[^\"\\]|\\.)*)\"")

#: programs whose lines belong to ``system.auth`` even when no rule matched
AUTH_PROGRAMS = frozenset(RULES) | {"login", "sshd-session", "systemd-logind", "polkitd", "pkexec", "chsh", "chfn",
                                    "newgrp", "cron", "CRON", "vipw", "nscd", "sssd", "krb5kdc", "klogind"}


def resolve_tz(name: str | None) -> tzinfo:
    if not name:
        local = datetime.now().astimezone().tzinfo
        return local or UTC
    if name.upper() in {"UTC", "Z"}:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name too long for a file name
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Paris)") from exc


#: minutes whose date ``bsd_iso`` keeps at once (a year of auth.log has ~500,000)
MINUTES_KEPT = 4096


@dataclass(slots=True)
class _FileContext:
    reference: datetime  # the file's mtime: no line was written after it
    #: (mon, day, hh, mm) of an RFC 3164 stamp, or (minute, zone) of an ISO one -> the UTC
    #: ``@timestamp`` up to its seconds ("2026-11-25T09:15:"), or "" where a minute cannot be
    #: shared (a zone or year change in it)
    minutes: dict[tuple[str | None, ...], str] = field(default_factory=dict)


class SyslogReader(LineReader):
    name = "syslog"

    def __init__(self, *, year: int | None = None, tz: str | None = None, follow: bool = False) -> None:
        super().__init__(follow=follow)
        if year is not None and not 1970 <= year <= 9999:
            raise ValueError(f"--year {year} is out of range")
        self.year = year
        self.tz = resolve_tz(tz)
        self._tz_is_fixed = self.tz is UTC

    def begin(self, path: Path | None) -> _FileContext:
        if path is None:  # a pipe: its lines were written up to now
            return _FileContext(datetime.now(UTC))
        mtime = os.stat(path).st_mtime
        return _FileContext(datetime.fromtimestamp(mtime, UTC))

    # -- headers ---------------------------------------------------------------------------
    def bsd_time(self, mon: str, day: str, hh: str, mm: str, ss: str, ctx: _FileContext) -> datetime:
        month = _MONTHS.get(mon)
        if month is None:
            raise LineError("bad timestamp", f"unknown month {mon!r}")
        d, h, mi, sec = int(day), int(hh), int(mm), int(ss)
        years = [self.year] if self.year else [ctx.reference.year, ctx.reference.year - 1]
        for year in years:
            try:
                ts = datetime(year, month, d, h, mi, sec, tzinfo=self.tz)
            except ValueError:
                continue  # 29 Feb in a non-leap year: try the year before
            if self.year or ts <= ctx.reference + timedelta(days=2):
                return ts
        raise LineError("bad timestamp", f"no valid date for {mon} {d} {h:02}:{mi:02}:{sec:02}")

    def bsd_iso(self, mon: str, day: str, hh: str, mm: str, ss: str, ctx: _FileContext) -> str:
        """``@timestamp`` of an RFC 3164 stamp; each minute's date, year and zone are worked out once.

        A minute is shared when its seconds 00 and 59 land in the same UTC minute on
        whole seconds: then no zone change and no year boundary (the two-day rule) lies
        inside it, and every second of it is that prefix plus the seconds as written.
        """
        key = (mon, day, hh, mm)
        prefix = ctx.minutes.get(key)
        if prefix and ss < "60":
            return prefix + ss + ".000Z"
        if prefix is None:
            try:
                first = utc_stamp(self.bsd_time(mon, day, hh, mm, "00", ctx))
                last = utc_stamp(self.bsd_time(mon, day, hh, mm, "59", ctx))
            except LineError:
                first = last = ""
            shared = first[:-7] == last[:-7] and first.endswith(":00.000Z") and last.endswith(":59.000Z")
            if len(ctx.minutes) >= MINUTES_KEPT:  # lines come in time order: the old minutes are done
                ctx.minutes.clear()
            prefix = ctx.minutes[key] = first[:-7] if shared else ""
            if prefix and ss < "60":
                return prefix + ss + ".000Z"
        return utc_stamp(self.bsd_time(mon, day, hh, mm, ss, ctx))  # raises on a bad date: never cached

    def parse(self, text: str, ctx: Any) -> Event | None:
        m = BSD.match(text)
        if m is not None:
            pri, mon, day, hh, mm, ss, host, tag, pid, msg = m.groups()
            prefix = ctx.minutes.get((mon, day, hh, mm))  # bsd_iso's cache, without the call
            iso = prefix + ss + ".000Z" if prefix and ss < "60" else self.bsd_iso(mon, day, hh, mm, ss, ctx)
            return build_event(iso, pri, host, tag, pid, msg)
        m = ISO.match(text)
        if m is not None:
            pri, ts, minute, ss, fraction, zone, host, tag, pid, msg = m.groups()
            prefix = ctx.minutes.get((minute, zone))
            if prefix and ss < "60" and (not fraction or fraction.isascii()):  # ms as written, truncated as to_iso
                iso = prefix + ss + ("." + fraction[:3].ljust(3, "0") if fraction else ".000") + "Z"
            else:
                iso = self.iso_stamp(ts, minute, zone, ctx)
            return build_event(iso, pri, host, tag, pid, msg)
        m = RFC5424.match(text)
        if m is not None:
            return self.parse_5424(m)
        raise LineError("no syslog header")

    def iso_stamp(self, ts: str, minute: str, zone: str | None, ctx: _FileContext) -> str:
        """``@timestamp`` of an ISO stamp; each (minute, zone) converted to UTC once, as ``bsd_iso``."""
        key = (minute, zone)
        if key not in ctx.minutes:
            try:
                first = utc_stamp(_iso_time(f"{minute}:00{zone or ''}", self.tz))
                last = utc_stamp(_iso_time(f"{minute}:59{zone or ''}", self.tz))
            except LineError:
                first = last = ""
            shared = first[:-7] == last[:-7] and first.endswith(":00.000Z") and last.endswith(":59.000Z")
            if len(ctx.minutes) >= MINUTES_KEPT:
                ctx.minutes.clear()
            ctx.minutes[key] = first[:-7] if shared else ""
        return utc_stamp(_iso_time(ts, self.tz))

    def parse_5424(self, m: re.Match[str]) -> Event:
        ts = _iso_time(m.group("ts"), self.tz) if m.group("ts") != "-" else None
        if ts is None:
            raise LineError("bad timestamp", "RFC 5424 line without a timestamp")
        nil = {"-"}
        host, app, procid, msgid = (None if v in nil else v for v in m.group("host", "app", "procid", "msgid"))
        msg = m.group("msg")
        if msg.startswith("\ufeff"):
            msg = msg[1:]
        event = build_event(ts, m.group("pri"), host, app, procid if procid and procid.isdigit() else None, msg)
        if procid and not procid.isdigit():
            event["log.syslog.procid"] = procid
        if msgid:
            event["log.syslog.msgid"] = msgid
        sd = m.group("sd")
        if sd != "-":
            for sd_id, params in _SD_ELEMENT.findall(sd):
                for key, value in _SD_PARAM.findall(params):
                    event[f"log.syslog.structured_data.{sd_id}.{key}"] = value.replace('\\"', '"').replace("\\]", "]")
        return event


def build_event(ts: datetime | str, pri: str | int | None, host: str | None, tag: str | None, pid: str | int | None,
                msg: str) -> Event:
    """The event of one syslog-style message: header fields plus ``authmsg``'s reading.

    ``ts`` is a datetime or an already formatted ``@timestamp`` (``to_iso``).
    """
    stamp = ts if ts.__class__ is str else utc_stamp(ts)  # type: ignore[arg-type]
    number = pid_number(pid) if pid else None
    if pri is None and host and tag and number is not None and "(" not in tag:  # the common line, as one dict literal
        program = tag
        event: Event = {
            "@timestamp": stamp, "event.kind": "event", "event.module": "system", "message": msg,
            "host.name": host, "log.syslog.hostname": host, "process.name": tag, "log.syslog.appname": tag,
            "process.pid": number, "log.syslog.procid": str(pid),
        }
    else:
        event = {"@timestamp": stamp, "event.kind": "event", "event.module": "system", "message": msg}
        if pri is not None:
            code = int(pri)
            if code > 191:
                raise LineError("bad priority", f"<{pri}> is above 191")
            event["log.syslog.facility.code"] = code >> 3
            event["log.syslog.severity.code"] = code & 7
        if host:
            event["host.name"] = host
            event["log.syslog.hostname"] = host
        program = ""
        if tag:
            program = tag.partition("(")[0]
            event["process.name"] = program
            event["log.syslog.appname"] = tag
        if pid:
            if number is not None:
                event["process.pid"] = number
            event["log.syslog.procid"] = str(pid)
    if tag and read_message(tag, msg, event):
        event["event.dataset"] = "system.auth"
    else:
        event["event.dataset"] = "system.auth" if program in AUTH_PROGRAMS or "pam_" in (tag or "") else "system.syslog"
    if host:
        hosts = event.get("related.hosts")
        event["related.hosts"] = [*hosts, host] if hosts else [host]
    return event


def _iso_time(text: str, tz: tzinfo) -> datetime:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise LineError("bad timestamp", f"not an ISO time: {text!r}") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=tz)
