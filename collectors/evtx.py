"""Windows event logs (``.evtx``) through PyPI's ``evtx`` (the Rust parser), as ECS events.

Every record is kept: its ``System`` part becomes ``winlog.*`` (``event_id``, ``channel``,
``provider_name``, ``computer_name``, ``record_id``...) and its ``EventData`` (or
``UserData``) is flattened under ``winlog.event_data.*`` with the Windows names
(``TargetUserName``, ``LogonType``), which is what Sigma's Windows rules name. The logon
family (``LOGON_FAMILY``: 4624, 4625, 4634, 4647, 4648, 4672, 4768, 4769, 4771, 4776,
4720, 4722-4726, 4728, 4732, 4756) is in addition mapped to ECS ``authentication`` /
``iam`` events with ``user.*``, ``source.*`` and ``winlog.logon.*``, after Winlogbeat's
security module (its ``event.action`` names).

Identity is the SHA-1 of the whole file (EVTX headers are rewritten as a log grows, so
no prefix is stable; exports are static). Position is the record's index in the file, so
``event.id`` = sha1("evtx:<file hash>:<index>"), and resuming skips the records already
committed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from collectors.base import (
    Batch,
    Checkpoint,
    Event,
    ReaderBase,
    ReadProblem,
    clip,
    file_size,
    id_prefix,
    pid_number,
    where_raised,
)
from collectors.lines import utc_stamp

Fields = dict[str, Any]

LOGON_TYPES = {
    "0": "System", "2": "Interactive", "3": "Network", "4": "Batch", "5": "Service", "7": "Unlock",
    "8": "NetworkCleartext", "9": "NewCredentials", "10": "RemoteInteractive", "11": "CachedInteractive",
    "12": "CachedRemoteInteractive", "13": "CachedUnlock",
}
#: NTSTATUS / Kerberos codes seen on failed logons (Microsoft's 4625 / 4771 documentation)
FAILURE_REASONS = {
    "0xc000005e": "no logon servers available", "0xc0000064": "user name does not exist",
    "0xc000006a": "bad password", "0xc000006d": "bad user name or password",
    "0xc000006e": "account restriction", "0xc000006f": "outside authorized hours",
    "0xc0000070": "unauthorized workstation", "0xc0000071": "password expired",
    "0xc0000072": "account disabled", "0xc00000dc": "server in wrong state", "0xc0000133": "clock skew",
    "0xc000015b": "logon type not granted", "0xc0000193": "account expired", "0xc0000224": "password must change",
    "0xc0000234": "account locked out", "0xc0000413": "authentication firewall",
    "0x6": "client not found in Kerberos database", "0x12": "client credentials revoked",
    "0x17": "password expired", "0x18": "pre-authentication failed (bad password)", "0x25": "clock skew too great",
}


@dataclass(frozen=True, slots=True)
class Mapping:
    action: str
    category: tuple[str, ...]
    type: tuple[str, ...]
    outcome: str | None  # None: decided by the Status field
    build: Callable[[Fields, Fields], None]


def _v(data: Fields, key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    text = value.strip() if value.__class__ is str else str(value).strip()
    return None if text == "" or text == "-" else text


def _set(event: Fields, field: str, value: Any) -> None:
    if value is not None:
        event[field] = value


_IP_CHARS = re.compile(r"[0-9A-Fa-f:.]+")


def _ip(value: str | None) -> str | None:
    if not value or value == "-":
        return None
    if value.startswith("::ffff:"):
        value = value[7:]
    return value if _IP_CHARS.fullmatch(value) and ("." in value or ":" in value) else None


def _pid(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


def _subject(e: Fields, d: Fields) -> None:
    _set(e, "user.name", _v(d, "SubjectUserName"))
    _set(e, "user.domain", _v(d, "SubjectDomainName"))
    _set(e, "user.id", _v(d, "SubjectUserSid"))


def _target_as_user(e: Fields, d: Fields) -> None:
    _set(e, "user.name", _v(d, "TargetUserName"))
    _set(e, "user.domain", _v(d, "TargetDomainName"))
    _set(e, "user.id", _v(d, "TargetUserSid") or _v(d, "TargetSid"))


def _target(e: Fields, d: Fields) -> None:
    _set(e, "user.target.name", _v(d, "TargetUserName"))
    _set(e, "user.target.domain", _v(d, "TargetDomainName"))
    _set(e, "user.target.id", _v(d, "TargetSid") or _v(d, "TargetUserSid"))


def _source(e: Fields, d: Fields) -> None:
    _set(e, "source.ip", _ip(_v(d, "IpAddress")))
    port = _v(d, "IpPort")
    if port and port.isdigit() and port != "0":
        e["source.port"] = int(port)
    _set(e, "source.domain", _v(d, "WorkstationName") or _v(d, "Workstation"))


def _process(e: Fields, d: Fields) -> None:
    exe = _v(d, "ProcessName")
    if exe:
        e["process.executable"] = exe
        e["process.name"] = exe.replace("/", "\\").rsplit("\\", 1)[-1]
    pid = _pid(_v(d, "ProcessId"))
    if pid:  # 0x0: no process (a network logon)
        e["process.pid"] = pid


def _logon(e: Fields, d: Fields) -> None:
    kind = _v(d, "LogonType")
    if kind:
        e["winlog.logon.type"] = LOGON_TYPES.get(kind, kind)
    _set(e, "winlog.logon.id", _v(d, "TargetLogonId") or _v(d, "SubjectLogonId"))


def _failure(e: Fields, d: Fields) -> None:
    for key in ("SubStatus", "Status", "FailureCode"):
        code = (_v(d, key) or "").lower()
        if code and code not in ("0x0", "0"):
            e["event.reason"] = FAILURE_REASONS.get(code, code)
            return


def m4624(e: Fields, d: Fields) -> None:
    _target_as_user(e, d)
    _source(e, d)
    _process(e, d)
    _logon(e, d)


def m4625(e: Fields, d: Fields) -> None:
    m4624(e, d)
    _failure(e, d)


def m4634(e: Fields, d: Fields) -> None:
    _target_as_user(e, d)
    _logon(e, d)


def m4648(e: Fields, d: Fields) -> None:
    _subject(e, d)
    _set(e, "user.target.name", _v(d, "TargetUserName"))
    _set(e, "user.target.domain", _v(d, "TargetDomainName"))
    _set(e, "destination.domain", _v(d, "TargetServerName"))
    _source(e, d)
    _process(e, d)
    _set(e, "winlog.logon.id", _v(d, "SubjectLogonId"))


def m4672(e: Fields, d: Fields) -> None:
    _subject(e, d)
    _set(e, "winlog.logon.id", _v(d, "SubjectLogonId"))
    privileges = _v(d, "PrivilegeList")
    if privileges:
        e["user.roles"] = privileges.split()


def m_kerberos(e: Fields, d: Fields) -> None:
    _target_as_user(e, d)
    _set(e, "source.ip", _ip(_v(d, "IpAddress")))
    port = _v(d, "IpPort")
    if port and port.isdigit() and port != "0":
        e["source.port"] = int(port)
    _set(e, "service.name", _v(d, "ServiceName"))
    _failure(e, d)


def m4776(e: Fields, d: Fields) -> None:
    _set(e, "user.name", _v(d, "TargetUserName"))
    _set(e, "source.domain", _v(d, "Workstation"))
    _failure(e, d)


def m_account(e: Fields, d: Fields) -> None:
    _subject(e, d)
    _target(e, d)


def m_group(e: Fields, d: Fields) -> None:
    _subject(e, d)
    member = _v(d, "MemberName")
    if member:
        cn = re.match(r"(?i)CN=((?:\\,|[^,])+)", member)
        e["user.target.name"] = cn.group(1).replace("\\,", ",") if cn else member
    _set(e, "user.target.id", _v(d, "MemberSid"))
    _set(e, "group.name", _v(d, "TargetUserName"))
    _set(e, "group.domain", _v(d, "TargetDomainName"))
    _set(e, "group.id", _v(d, "TargetSid"))


AUTH, IAM = ("authentication",), ("iam",)
LOGON_FAMILY: dict[int, Mapping] = {
    4624: Mapping("logged-in", ("authentication", "session"), ("start",), "success", m4624),
    4625: Mapping("logon-failed", AUTH, ("start",), "failure", m4625),
    4634: Mapping("logged-out", ("authentication", "session"), ("end",), "success", m4634),
    4647: Mapping("logged-out", ("authentication", "session"), ("end",), "success", m4634),
    4648: Mapping("logged-in-explicit", AUTH, ("start",), "success", m4648),
    4672: Mapping("logged-in-special", IAM, ("admin",), "success", m4672),
    4768: Mapping("kerberos-authentication-ticket-requested", AUTH, ("start",), None, m_kerberos),
    4769: Mapping("kerberos-service-ticket-requested", AUTH, ("start",), None, m_kerberos),
    4771: Mapping("kerberos-preauth-failed", AUTH, ("start",), "failure", m_kerberos),
    4776: Mapping("credential-validated", AUTH, ("start",), None, m4776),
    4720: Mapping("added-user-account", IAM, ("user", "creation"), "success", m_account),
    4722: Mapping("enabled-user-account", IAM, ("user", "change"), "success", m_account),
    4723: Mapping("changed-password", IAM, ("user", "change"), "success", m_account),
    4724: Mapping("reset-password", IAM, ("user", "change"), "success", m_account),
    4725: Mapping("disabled-user-account", IAM, ("user", "change"), "success", m_account),
    4726: Mapping("deleted-user-account", IAM, ("user", "deletion"), "success", m_account),
    4728: Mapping("added-member-to-group", IAM, ("group", "change"), "success", m_group),
    4732: Mapping("added-member-to-group", IAM, ("group", "change"), "success", m_group),
    4756: Mapping("added-member-to-group", IAM, ("group", "change"), "success", m_group),
}
#: the logon family is in the Security log; other providers reuse some ids
SECURITY_PROVIDERS = frozenset({"Microsoft-Windows-Security-Auditing", "Security"})

_FRACTION = re.compile(r"(\.\d{6})\d+")


def _attr(node: Any, name: str) -> Any:
    if isinstance(node, dict):
        attrs = node.get("#attributes")
        if isinstance(attrs, dict):
            return attrs.get(name)
    return None


def _text(node: Any) -> Any:
    if isinstance(node, dict):
        return node.get("#text")
    return node


def _name(node: Any) -> str | None:
    """A name of the System part (channel, computer): text, whatever type a crafted record gives."""
    value = _text(node)
    return None if value is None or value.__class__ is dict else str(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(_scalar(v) for v in value if v is not None)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def flatten_data(node: Any, prefix: str, out: Fields) -> None:
    """``EventData`` / ``UserData`` -> ``winlog.event_data.<Name>`` strings (Sigma's field names)."""
    if not isinstance(node, dict):
        if node is not None:
            out[prefix.rstrip(".")] = _scalar(node)
        return
    for key, value in node.items():
        if type(value) is str and key != "Data":  # the common case first: <Data Name="X">text</Data>
            out[prefix + key] = value
            continue
        if key == "#attributes":
            continue
        if key == "Data" and prefix.endswith("event_data."):
            # unnamed <Data> elements: param1, param2... as Winlogbeat does, and all of them
            # also as one ``Data`` value, one per line as the Event Viewer shows them: SigmaHQ's
            # rules for Application/System providers test ``Data|contains``.
            items = value if isinstance(value, list) else [value]
            unnamed: list[str] = []
            for i, item in enumerate(items, start=1):
                name = _attr(item, "Name")
                text = _text(item)
                if text is not None:
                    text = _scalar(text)
                    out[f"{prefix}{name or f'param{i}'}"] = text
                    if not name:
                        unnamed.append(text)
            if unnamed:
                out[prefix + "Data"] = "\n".join(unnamed)
            continue
        if isinstance(value, dict) and "#text" not in value:
            flatten_data(value, f"{prefix}{key}.", out)
        elif value is not None:
            text = _text(value)
            if text is not None:
                out[f"{prefix}{key}"] = _scalar(text)


@functools.lru_cache(maxsize=4096)
def dataset_for(channel: str | None, provider: str | None = None) -> str:
    """``windows.<channel>``, or ``windows.<provider>`` for ETW traces that have no channel."""
    name = channel or provider
    if not name:
        return "windows.unknown"
    return "windows." + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


_EVENT_DATA = "winlog.event_data."
_SYSTEM_TEXT = (("Level", "winlog.level"), ("Task", "winlog.task"), ("Opcode", "winlog.opcode"),
                ("Keywords", "winlog.keywords"), ("Version", "winlog.version"))


def _timestamp(created: Any) -> str:
    """``@timestamp`` of ``TimeCreated/@SystemTime``; raises ``ValueError`` when it is not a time.

    The parser writes ``2026-11-25T08:00:00.123456Z``: then the result is its first 23
    characters and a ``Z`` (what ``to_iso`` makes of it), once ``fromisoformat`` has
    checked the date and time. Anything else takes the general route.
    """
    if (created.__class__ is str and len(created) == 27 and created[26] == "Z" and created[19] == "."
            and created[10] == "T" and created[0] != "0" and created[20:26].isdigit() and created[20:26].isascii()):
        try:
            datetime.fromisoformat(created[:19])  # validates
        except ValueError:
            pass  # the general route says why, in its words
        else:
            return created[:23] + "Z"
    ts = datetime.fromisoformat(_FRACTION.sub(r"\1", str(created)).replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return utc_stamp(ts)  # a LineError (a ValueError): the record's "bad record"


#: ``winlog.event_data.<name>`` by name: one string for all the events that have the field (its
#: hash computed once, not a new string per event); bounded, as the names come from the file
_DATA_NAMES: dict[str, str] = {}
_DATA_NAMES_KEPT = 4096


def _event_data(node: Any, event: Event) -> Fields | None:
    """``EventData`` into ``event`` as ``winlog.event_data.*``; returns the fields by their own
    names (what the logon mappings read), or ``None``: take them from ``event`` if needed.

    The common node is flat, every value a string, a number or null: its fields go straight
    in (numbers as ``str``, nulls left out, as ``flatten_data`` does), and when every value is
    a string the node itself is the by-name view. Anything else (booleans, unnamed ``<Data>``,
    nesting, attributes) goes through ``flatten_data``, which gives the same keys for the flat part.
    """
    if node.__class__ is dict:
        strings = True
        names = _DATA_NAMES
        for key, value in node.items():
            kind = value.__class__
            if key == "Data":
                break
            name = names.get(key)
            if name is None:
                name = _EVENT_DATA + key
                if len(names) < _DATA_NAMES_KEPT:
                    names[key] = name
            if kind is str:
                event[name] = value
            elif kind is int or kind is float:
                event[name] = str(value)
                strings = False
            elif value is None:
                strings = False
            else:
                break
        else:
            return node if strings else None  # type: ignore[no-any-return]
    data: Fields = {}
    flatten_data(node, _EVENT_DATA, data)
    event.update(data)
    return {k[18:]: v for k, v in data.items() if k.startswith(_EVENT_DATA)}


def record_to_event(record: Fields) -> Event:
    """One parsed EVTX record (the ``evtx`` JSON) as a flat ECS event."""
    root = record.get("Event") or {}
    system = (root.get("System") or {}) if isinstance(root, dict) else None
    if not isinstance(system, dict):  # a crafted record: the parser gave something else than elements
        raise ValueError("no Event/System element")
    provider_node = system.get("Provider")
    attrs = provider_node.get("#attributes") if isinstance(provider_node, dict) else None
    if isinstance(attrs, dict):  # _attr, read once for the three names
        provider, guid = _name(attrs.get("Name") or attrs.get("EventSourceName")), attrs.get("Guid")
    else:
        provider = guid = None
    raw_id = system.get("EventID")
    if raw_id.__class__ is not int:
        raw_id = _text(raw_id)
    try:
        code = int(raw_id)
    except (TypeError, ValueError):
        raise ValueError(f"EventID {raw_id!r} is not a number") from None
    # the usual names are text already (``_name`` for anything else)
    channel = system.get("Channel")
    if channel.__class__ is not str:
        channel = _name(channel)
    computer = system.get("Computer")
    if computer.__class__ is not str:
        computer = _name(computer)
    created = _attr(system.get("TimeCreated"), "SystemTime")
    if not created:
        raise ValueError("no TimeCreated")
    code_text = str(code)
    event: Event = {
        "@timestamp": _timestamp(created), "event.kind": "event", "event.code": code_text, "event.module": "windows",
        "winlog.event_id": code_text,
    }
    if provider is not None:
        event["event.provider"] = provider
        event["winlog.provider_name"] = provider
    _set(event, "winlog.provider_guid", guid)
    _set(event, "winlog.channel", channel)
    if computer:
        event["winlog.computer_name"] = computer
        event["host.name"] = computer
    record_id = system.get("EventRecordID")
    if record_id is not None:
        event["winlog.record_id"] = str(record_id)
    for key, field in _SYSTEM_TEXT:
        value = system.get(key)
        if value.__class__ is dict:
            value = value.get("#text")
        if value is not None:
            event[field] = str(value)
    execution = system.get("Execution")
    if execution is not None:
        attrs = execution.get("#attributes") if isinstance(execution, dict) else None  # _attr, read once
        pid, tid = (attrs.get("ProcessID"), attrs.get("ThreadID")) if isinstance(attrs, dict) else (None, None)
        if pid is not None and (number := pid_number(pid)) is not None:
            event["winlog.process.pid"] = number
        if tid is not None and (number := pid_number(tid)) is not None:
            event["winlog.process.thread.id"] = number
    security = system.get("Security")
    if security is not None:
        _set(event, "winlog.user.identifier", _attr(security, "UserID"))
    node = root.get("EventData")
    plain: Fields | None = _event_data(node, event) if node is not None else {}
    node = root.get("UserData")
    if node is not None:
        flatten_data(node, "winlog.user_data.", event)
    mapping = LOGON_FAMILY.get(code) if provider in SECURITY_PROVIDERS or channel == "Security" else None
    if mapping is not None:
        event["event.dataset"] = "windows.security"
        event["event.action"] = mapping.action
        event["event.category"] = list(mapping.category)
        event["event.type"] = list(mapping.type)
        if plain is None:
            plain = {k[18:]: v for k, v in event.items() if k.startswith(_EVENT_DATA)}
        mapping.build(event, plain)
        outcome = mapping.outcome
        if outcome is None:
            status = (plain.get("Status") or "0x0").lower()
            outcome = "success" if status in ("0x0", "0") else "failure"
        event["event.outcome"] = outcome
        _related(event)
    else:
        event["event.dataset"] = dataset_for(channel, provider)
    return event


def _related(event: Event) -> None:
    users = [event[k] for k in ("user.name", "user.target.name") if event.get(k)]
    if users:
        event["related.user"] = list(dict.fromkeys(users))
    if event.get("source.ip"):
        event["related.ip"] = [event["source.ip"]]
    if event.get("source.domain"):
        event["related.hosts"] = [event["source.domain"]]


def whole_file_identity(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def header_record_count(path: Path) -> int:
    """Records in the file by its chunk headers (independent of the parser; used by compat)."""
    total = 0
    with open(path, "rb") as fh:
        header = fh.read(4096)
        if header[:8] != b"ElfFile\x00":
            raise ValueError(f"{path}: not an EVTX file")
        fh.seek(0, 2)
        size = fh.tell()
        offset = 4096
        while offset + 512 <= size:
            fh.seek(offset)
            chunk = fh.read(512)
            if chunk[:8] == b"ElfChnk\x00":
                first, last = struct.unpack_from("<QQ", chunk, 8)
                if last >= first and first > 0:
                    total += last - first + 1
            offset += 65536
    return total


#: identities ``EvtxReader`` remembers (more than the pipeline's look-ahead of files)
IDENTITIES_KEPT = 1024


class EvtxReader(ReaderBase):
    name = "evtx"
    patterns = ("*.evtx", "*.EVTX")
    #: events hold no reference cycles: the pipeline may pause the cyclic GC (see ``gc_paused``)
    no_cycles = True
    #: values are text, numbers and lists of text (``EventData`` objects are flattened or dumped as JSON)
    flat_events = True

    def __init__(self, *, threads: int = 1) -> None:
        self.threads = threads
        #: files hashed, by (path, device, inode, size, mtime): the pipeline asks for identities
        #: ahead (to read their checkpoints in one request), then again, and ``batches`` needs it
        #: too; hashing a large log twice cost ~10 % of its ingest. Bounded (oldest dropped).
        self._hashed: dict[tuple[str, int, int, int, int], str] = {}

    def identity(self, path: Path) -> str:
        st = os.stat(path)
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if (known := self._hashed.get(key)) is not None:
            return known
        identity = whole_file_identity(path)
        if len(self._hashed) >= IDENTITIES_KEPT:
            del self._hashed[next(iter(self._hashed))]
        self._hashed[key] = identity
        return identity

    def batches(self, path: Path, resume: Checkpoint | None, batch_size: int) -> Iterator[Batch]:
        from evtx import PyEvtxParser

        identity = self.identity(path)
        size = file_size(path)
        skip = int(resume.get("record", 0)) if resume else 0
        try:
            parser = PyEvtxParser(str(path), self.threads)
            records = parser.records_json()
        except (RuntimeError, OSError) as exc:
            raise ValueError(f"{path}: not a readable EVTX file ({exc})") from exc
        source = str(path)
        try:
            announced = header_record_count(path)
        except ValueError:
            announced = 0
        expected = max(announced, 1)
        prefix, sha1, loads = id_prefix(self.name, identity), hashlib.sha1, orjson.loads
        index = 0
        events: list[Event] = []
        problems: list[ReadProblem] = []
        errors_in_a_row = 0
        while True:
            try:
                record: dict[str, Any] = next(records)  # type: ignore[arg-type]
            except StopIteration:
                break
            except RuntimeError as exc:
                index += 1
                errors_in_a_row += 1
                if index > skip:
                    problems.append(ReadProblem(source, f"record {index}", "unreadable record", clip(str(exc))))
                if errors_in_a_row > 1000:
                    problems.append(ReadProblem(source, f"record {index}", "gave up after 1000 unreadable records"))
                    break
                continue
            errors_in_a_row = 0
            index += 1
            if index <= skip:
                continue
            try:
                event = record_to_event(loads(record["data"]))
            except (ValueError, KeyError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                rid = record.get("event_record_id")
                problems.append(ReadProblem(source, f"record {index} (id {rid})", "bad record", clip(str(exc))))
            except Exception as exc:  # the boundary: a mapping bug costs this record only
                rid = record.get("event_record_id")
                problems.append(ReadProblem(source, f"record {index} (id {rid})", f"parser error: {type(exc).__name__}",
                                            f"{clip(str(exc), 200)} (in {where_raised(exc)})"))
            else:
                event["event.id"] = sha1(prefix + b"%d" % index).hexdigest()  # event_id(name, identity, index)
                event["log.file.path"] = source
                events.append(event)
            if len(events) + len(problems) >= batch_size:
                yield Batch(events, problems, {"record": index}, min(size, size * index // expected))
                events, problems = [], []
        if index > skip and index < announced:
            # the parser skips a chunk cut short (a truncated copy) without a word: say so
            problems.append(ReadProblem(source, f"after record {index}", "records missing",
                                        f"the chunk headers announce {announced} records, {index} were read "
                                        "(truncated file or damaged chunk)"))
        if index > skip or events or problems:
            yield Batch(events, problems, {"record": index}, size)
