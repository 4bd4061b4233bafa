"""The messages of Linux authentication programs (sshd, PAM, sudo, su, shadow-utils) as ECS fields.

Shared by the syslog and journald readers: both hand ``parse_message(program, message)``
the program name and the free text after the syslog header, and get back the ECS
categorisation (``event.category/type/outcome/action``) and the entities (``user.*``,
``source.*``, ``group.*``, ``process.command_line``). Hand-written because no library
parses these messages: the patterns follow OpenSSH's ``auth.c``/``sshd.c`` log calls,
Linux-PAM's ``pam_unix``, sudo's log format and shadow-utils' syslog calls, and the
names follow Filebeat's ``system.auth`` where Filebeat has one.

``RULES`` is the registry: program -> ordered rules (first match wins). A program
without rules (cron, named...) still yields an event, with no auth fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Fields = dict[str, Any]

#: regex group name -> ECS field (``ip`` becomes ``source.domain`` when it is a host name)
GROUP_FIELDS: dict[str, str] = {
    "user": "user.name",
    "target": "user.target.name",
    "target_id": "user.target.id",
    "effective": "user.effective.name",
    "ip": "source.ip",
    "port": "source.port",
    "method": "ztsoc.auth.method",
    "group": "group.name",
    "gid": "group.id",
    "command": "process.command_line",
    "reason": "event.reason",
    "tty": "ztsoc.process.tty.name",
    "cwd": "process.working_directory",
    "count": "ztsoc.auth.attempts",
}
_INT_FIELDS = frozenset({"source.port", "ztsoc.auth.attempts"})
#: an IPv4 or IPv6 literal (anything else in an address group is a host name)
_IP = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}$|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$")


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: re.Pattern[str]
    action: str
    category: tuple[str, ...]
    type: tuple[str, ...]
    outcome: str | None = None
    extra: Fields = field(default_factory=dict)
    post: Callable[[Fields, re.Match[str]], None] | None = None
    #: the first words (up to the first space) a message this rule matches can start with;
    #: ``None``: any. Lets ``parse_message`` try only the rules a message can match.
    first: tuple[str, ...] | None = None
    #: a literal every match contains: a C-speed ``in`` test before the regex runs
    needs: str = ""
    #: (index in ``match.groups()``, ECS field, as int) of the groups ``GROUP_FIELDS`` names
    captures: tuple[tuple[int, str, bool], ...] = ()


def _r(pattern: str, action: str, category: tuple[str, ...], type_: tuple[str, ...], outcome: str | None = None,
       post: Callable[[Fields, re.Match[str]], None] | None = None, *, first: tuple[str, ...] | None = None,
       needs: str = "", **extra: Any) -> Rule:
    compiled = re.compile(pattern)
    captures = tuple(sorted((index - 1, GROUP_FIELDS[name], GROUP_FIELDS[name] in _INT_FIELDS)
                            for name, index in compiled.groupindex.items() if name in GROUP_FIELDS))
    return Rule(compiled, action, category, type_, outcome, {GROUP_FIELDS.get(k, k): v for k, v in extra.items()},
                post, first, needs, captures)


AUTH, SESSION, IAM, NET, PROC = ("authentication",), ("session",), ("iam",), ("network",), ("process",)
_USER = r"(?P<user>.*?)"  # always followed by " from ": user names may hold spaces
_FROM = r"(?P<ip>[0-9A-Fa-f:.]+)(?: port (?P<port>\d+))?"


def _invalid(f: Fields, m: re.Match[str]) -> None:
    if m.group("invalid"):  # only on rules that have the group
        f["event.reason"] = "invalid user"


SSHD: tuple[Rule, ...] = (
    _r(r"^Accepted (?P<method>[\w/-]+) for " + _USER + r" from " + _FROM + r"(?: ssh2)?(?::\s*(?P<key>.+))?$",
       "ssh_login", ("authentication", "session"), ("start",), "success", first=('Accepted',)),
    _r(r"^Failed (?P<method>[\w/-]+) for (?P<invalid>invalid user )?" + _USER + r" from " + _FROM + r"(?: ssh2)?",
       "ssh_login", AUTH, ("start",), "failure", post=_invalid, first=('Failed',)),
    _r(r"^(?:error: )?maximum authentication attempts exceeded for (?P<invalid>invalid user )?" + _USER
       + r" from " + _FROM, "ssh_max_auth_attempts", AUTH, ("info",), "failure", post=_invalid, first=('error:', 'maximum')),
    _r(r"^Disconnecting(?: (?:invalid|authenticating) user (?P<user>\S+) " + _FROM + r")?:? Too many authentication "
       r"failures(?: for (?:invalid user )?(?P<user2>\S+))?", "ssh_max_auth_attempts", AUTH, ("info",), "failure",
       post=lambda f, m: f.setdefault("user.name", m.group("user2")) if m.group("user2") else None, first=('Disconnecting', 'Disconnecting:')),
    _r(r"^Invalid user " + _USER + r" from " + _FROM, "ssh_invalid_user", AUTH, ("info",), "failure",
       reason="invalid user", first=('Invalid',)),
    _r(r"^input_userauth_request: invalid user (?P<user>.*?)(?: \[preauth\])?$", "ssh_invalid_user", AUTH, ("info",), "failure",
       reason="invalid user", first=('input_userauth_request:',)),
    _r(r"^(?:error: )?Received disconnect from " + _FROM + r":\s*(?P<code>\d+):\s*(?P<reason>.*?)\s*(?:\[preauth\])?$",
       "ssh_disconnect", NET, ("connection", "end"), first=('error:', 'Received')),
    _r(r"^Disconnected from (?:(?:invalid|authenticating) user (?P<user>\S+) |user (?P<user2>\S+) )?" + _FROM,
       "ssh_disconnect", NET, ("connection", "end"),
       post=lambda f, m: f.setdefault("user.name", m.group("user2")) if m.group("user2") else None, first=('Disconnected',)),
    _r(r"^Connection (?:closed|reset) by (?:(?:invalid|authenticating) user (?P<user>\S+) )?" + _FROM,
       "ssh_disconnect", NET, ("connection", "end"), first=('Connection',)),
    _r(r"^Connection from " + _FROM + r" on (?P<dip>[0-9A-Fa-f:.]+) port (?P<dport>\d+)", "ssh_connection", NET,
       ("connection", "start"),
       post=lambda f, m: f.update({"destination.ip": m.group("dip"), "destination.port": int(m.group("dport"))}), first=('Connection',)),
    _r(r"^Did not receive identification string from " + _FROM, "ssh_no_identification", NET, ("connection",),
       "failure", first=('Did',)),
    _r(r"^(?:error: )?kex_exchange_identification: .*|^(?:error: )?Protocol major versions differ.*|"
       r"^Bad protocol version identification.* from " + _FROM, "ssh_bad_protocol", NET, ("protocol",), "failure", first=('error:', 'kex_exchange_identification:', 'Protocol', 'Bad')),
    _r(r"^reverse mapping checking getaddrinfo for (?P<host>\S+) \[(?P<ip>[0-9A-Fa-f:.]+)\] failed", "ssh_reverse_mapping_failed",
       NET, ("info",), "failure", post=lambda f, m: f.update({"source.domain": m.group("host")}), first=('reverse',)),
    _r(r"^Address (?P<ip>[0-9A-Fa-f:.]+) maps to (?P<host>\S+), but this does not map back", "ssh_reverse_mapping_failed",
       NET, ("info",), "failure", post=lambda f, m: f.update({"source.domain": m.group("host")}), first=('Address',)),
    _r(r"^PAM service\(\w+\) ignoring max retries; (?P<count>\d+) > \d+", "ssh_max_auth_attempts", AUTH, ("info",),
       "failure", first=('PAM',)),
    _r(r"^Server listening on (?P<lip>\S+) port (?P<lport>\d+)", "ssh_server_listening", PROC, ("info",), first=('Server',)),
    _r(r"^Received signal (?P<sig>\d+); terminating", "ssh_server_stopped", PROC, ("end",), first=('Received',)),
    _r(r"^fatal: .*", "ssh_fatal", NET, ("connection",), "failure", first=('fatal:',)),
)

# -- PAM (any program: "pam_unix(sshd:auth): ..." or the old "sshd(pam_unix)[pid]: ...") -------------------
_PAM_KV = re.compile(r"(\w+)=(\S*)")


def _pam_failure(f: Fields, m: re.Match[str]) -> None:
    kv = dict(_PAM_KV.findall(m.group("kv")))
    if kv.get("rhost"):
        f["source.ip"] = kv["rhost"]
    if kv.get("user"):
        f["user.name"] = kv["user"]
    elif kv.get("ruser"):
        f["user.name"] = kv["ruser"]
    if kv.get("tty"):
        f["ztsoc.process.tty.name"] = kv["tty"]


def _session_by(f: Fields, m: re.Match[str]) -> None:
    # "session opened for user root(uid=0) by alice(uid=1000)": alice acts, as root
    by = m.group("by")
    if by:
        f["user.effective.name"] = f.pop("user.name")
        f["user.name"] = by


PAM: tuple[Rule, ...] = (
    _r(r"authentication failure;(?P<kv>.*)$", "pam_authentication_failure", AUTH, ("start",), "failure",
       post=_pam_failure, needs='authentication failure;'),
    _r(r"^PAM (?P<count>\d+) more authentication failures?;(?P<kv>.*)$", "pam_authentication_failure", AUTH,
       ("info",), "failure", post=_pam_failure, needs='more authentication failure'),
    _r(r"session opened for user (?P<user>[^\s(]+)(?:\(uid=\d+\))?(?: by (?P<by>[^\s(]*)\(uid=\d+\))?",
       "session_opened", SESSION, ("start",), "success", post=_session_by, needs='session opened for user '),
    _r(r"session closed for user (?P<user>[^\s(]+)", "session_closed", SESSION, ("end",), "success", needs='session closed for user '),
    _r(r"check pass; user (?P<user>\S+)", "pam_check_pass", AUTH, ("info",), "failure", needs='check pass; user '),
    _r(r"password changed for (?P<target>\S+)", "password_changed", IAM, ("user", "change"), "success", needs='password changed for '),
    _r(r"auth could not identify password for \[(?P<user>[^\]]+)\]", "pam_authentication_failure", AUTH, ("info",),
       "failure", needs='auth could not identify password for ['),
    _r(r"account (?P<user>\S+) has expired", "pam_account_expired", AUTH, ("info",), "failure", needs=' has expired'),
    _r(r"conversation failed", "pam_conversation_failed", AUTH, ("info",), "failure", needs='conversation failed'),
)

_SUDO_KV = re.compile(r"\s*(TTY|PWD|USER|GROUP|COMMAND|ENV)=(.*?)\s*(?:;|$)")


def _sudo(f: Fields, m: re.Match[str]) -> None:
    rest = m.group("rest")
    # COMMAND= is last and may contain ';'
    cmd_at = rest.find("COMMAND=")
    head, cmd = (rest[:cmd_at], rest[cmd_at + 8:]) if cmd_at >= 0 else (rest, None)
    kv = dict(_SUDO_KV.findall(head))
    if kv.get("TTY"):
        f["ztsoc.process.tty.name"] = kv["TTY"]
    if kv.get("PWD"):
        f["process.working_directory"] = kv["PWD"]
    if kv.get("USER"):
        f["user.effective.name"] = kv["USER"]
    if kv.get("GROUP"):
        f["group.name"] = kv["GROUP"]
    if cmd:
        f["process.command_line"] = cmd.strip()
    problem = m.group("problem")
    if problem:
        f["event.reason"] = problem.strip().rstrip(";").strip()
        f["event.outcome"] = "failure"
        if "incorrect password" in problem or "password required" in problem:
            f["event.action"] = "sudo_auth_failure"
            f["event.category"] = ["authentication"]
        elif "NOT in sudoers" in problem or "not allowed" in problem:
            f["event.action"] = "sudo_denied"


SUDO: tuple[Rule, ...] = (
    _r(r"^\s*(?P<user>\S+) : (?P<problem>[^;]*(?:incorrect password|NOT in sudoers|not allowed|password required|"
       r"command not allowed|unknown user)[^;]*;)?(?P<rest>.*TTY=.*)$", "sudo_command", PROC, ("start",), "success",
       post=_sudo, needs=' : '),
)

SU: tuple[Rule, ...] = (
    _r(r"^FAILED SU \(to (?P<effective>\S+)\) (?P<user>\S+) on (?P<tty>\S+)", "su", SESSION, ("start",), "failure", first=('FAILED',)),
    _r(r"^\(to (?P<effective>\S+)\) (?P<user>\S+) on (?P<tty>\S+)", "su", SESSION, ("start",), "success", first=('(to',)),
    _r(r"^FAILED su for (?P<effective>\S+) by (?P<user>\S+)", "su", SESSION, ("start",), "failure", first=('FAILED',)),
    _r(r"^Successful su for (?P<effective>\S+) by (?P<user>\S+)", "su", SESSION, ("start",), "success", first=('Successful',)),
    _r(r"^\+ (?P<tty>\S+) (?P<user>[^:\s]+):(?P<effective>\S+)", "su", SESSION, ("start",), "success", first=('+',)),
    _r(r"^- (?P<tty>\S+) (?P<user>[^:\s]+):(?P<effective>\S+)", "su", SESSION, ("start",), "failure", first=('-',)),
)

_Q = r"'?(?P<{}>[^',\s]+)'?"
USERADD: tuple[Rule, ...] = (
    _r(r"^new user: name=(?P<target>[^,]+), UID=(?P<target_id>\d+), GID=(?P<gid>\d+)", "user_created", IAM,
       ("user", "creation"), "success", first=('new',)),
    _r(r"^(?:new group|group added to [^:]+): name=(?P<group>[^,]+), GID=(?P<gid>\d+)", "group_created", IAM,
       ("group", "creation"), "success", first=('new', 'group')),
    _r(r"^add " + _Q.format("target") + r" to (?:shadow )?group " + _Q.format("group"), "user_added_to_group", IAM,
       ("group", "change"), "success", first=('add',)),
    _r(r"^failed adding user " + _Q.format("target") + r"(?P<reason>.*)", "user_created", IAM, ("user", "creation"),
       "failure", first=('failed',)),
)
USERMOD: tuple[Rule, ...] = (
    _r(r"^add " + _Q.format("target") + r" to (?:shadow )?group " + _Q.format("group"), "user_added_to_group", IAM,
       ("group", "change"), "success", first=('add',)),
    _r(r"^delete " + _Q.format("target") + r" from (?:shadow )?group " + _Q.format("group"),
       "user_removed_from_group", IAM, ("group", "change"), "success", first=('delete',)),
    _r(r"^change user name " + _Q.format("target") + r" to " + _Q.format("new"), "user_renamed", IAM,
       ("user", "change"), "success", first=('change',)),
    _r(r"^(?P<what>lock|unlock) user " + _Q.format("target") + r" password", "user_changed", IAM, ("user", "change"),
       "success", post=lambda f, m: f.update({"event.action": f"user_{m.group('what')}ed"}), first=('lock', 'unlock')),
    _r(r"^change user " + _Q.format("target") + r" (?P<what>\w+)", "user_changed", IAM, ("user", "change"), "success", first=('change',)),
)
USERDEL: tuple[Rule, ...] = (
    _r(r"^delete user " + _Q.format("target"), "user_deleted", IAM, ("user", "deletion"), "success", first=('delete',)),
    _r(r"^removed group " + _Q.format("group"), "group_deleted", IAM, ("group", "deletion"), "success", first=('removed',)),
    _r(r"^removed shadow group " + _Q.format("group"), "group_deleted", IAM, ("group", "deletion"), "success", first=('removed',)),
    _r(r"^delete " + _Q.format("target") + r" from (?:shadow )?group " + _Q.format("group"),
       "user_removed_from_group", IAM, ("group", "change"), "success", first=('delete',)),
)
GROUPADD: tuple[Rule, ...] = (
    _r(r"^(?:new group|group added to [^:]+): name=(?P<group>[^,]+), GID=(?P<gid>\d+)", "group_created", IAM,
       ("group", "creation"), "success", first=('new', 'group')),
)
GROUPDEL: tuple[Rule, ...] = (
    _r(r"^group " + _Q.format("group") + r" removed", "group_deleted", IAM, ("group", "deletion"), "success", first=('group',)),
    _r(r"^removed group " + _Q.format("group"), "group_deleted", IAM, ("group", "deletion"), "success", first=('removed',)),
)
GROUPMOD: tuple[Rule, ...] = (
    _r(r"^group changed in [^(]*\(group (?P<group>[^/]+)/(?P<gid>\d+)", "group_changed", IAM, ("group", "change"),
       "success", first=('group',)),
)
GPASSWD: tuple[Rule, ...] = (
    _r(r"^user (?P<target>\S+) added by (?P<user>\S+) to group (?P<group>\S+)", "user_added_to_group", IAM,
       ("group", "change"), "success", first=('user',)),
    _r(r"^user (?P<target>\S+) removed by (?P<user>\S+) from group (?P<group>\S+)", "user_removed_from_group", IAM,
       ("group", "change"), "success", first=('user',)),
)
CHAGE: tuple[Rule, ...] = (
    _r(r"^changed password expiry for (?P<target>\S+)", "password_expiry_changed", IAM, ("user", "change"), "success", first=('changed',)),
)
PASSWD: tuple[Rule, ...] = (
    _r(r"password for " + _Q.format("target") + r" changed by " + _Q.format("user"), "password_changed", IAM,
       ("user", "change"), "success", first=('password',)),
)

# Legacy daemons still found in old auth logs (rlogin/Kerberos, wu-ftpd)
KLOGIND: tuple[Rule, ...] = (
    _r(r"^Authentication failed from (?P<ip>[0-9A-Fa-f:.]+)(?: \((?P<host>[^)]*)\))?:?\s*(?P<reason>.*)$",
       "klogin_authentication_failure", AUTH, ("start",), "failure", first=('Authentication',)),
    _r(r"^Kerberos authentication failed", "klogin_authentication_failure", AUTH, ("start",), "failure", first=('Kerberos',)),
)
FTPD: tuple[Rule, ...] = (
    _r(r"^connection from (?P<ip>[0-9A-Fa-f:.]+)(?: \((?P<host>[^)]*)\))?", "ftp_connection", NET,
       ("connection", "start"), post=lambda f, m: f.update({"source.domain": m.group("host")}) if m.group("host")
       else None, first=('connection',)),
    _r(r"^ANONYMOUS FTP LOGIN FROM (?P<ip>[0-9A-Fa-f:.]+)", "ftp_login", AUTH, ("start",), "success",
       user="anonymous", first=('ANONYMOUS',)),
    _r(r"^FTP LOGIN FROM (?P<ip>[0-9A-Fa-f:.]+)[^,]*, (?P<user>\S+)", "ftp_login", AUTH, ("start",), "success", first=('FTP',)),
    _r(r"^FTP LOGIN FAILED FROM (?P<ip>[0-9A-Fa-f:.]+)[^,]*, (?P<user>\S+)", "ftp_login", AUTH, ("start",), "failure", first=('FTP',)),
)
LOGIN: tuple[Rule, ...] = (
    _r(r"^FAILED LOGIN (?:\(\d+\) )?on '?(?P<tty>[^' ]+)'? (?:FROM '?(?P<ip>[^' ]+)'? )?FOR '?(?P<user>[^',]+)'?",
       "login", AUTH, ("start",), "failure", first=('FAILED',)),
    _r(r"^ROOT LOGIN\s+on '?(?P<tty>[^' ]+)'?", "login", AUTH, ("start",), "success", user="root", first=('ROOT',)),
    _r(r"^LOGIN ON (?P<tty>\S+) BY (?P<user>\S+)", "login", AUTH, ("start",), "success", first=('LOGIN',)),
)

RULES: dict[str, tuple[Rule, ...]] = {
    "klogind": KLOGIND,
    "ftpd": FTPD,
    "login": LOGIN,
    "sshd": SSHD,
    "sshd-session": SSHD,
    "sudo": SUDO,
    "su": SU,
    "useradd": USERADD,
    "adduser": USERADD,
    "usermod": USERMOD,
    "userdel": USERDEL,
    "deluser": USERDEL,
    "groupadd": GROUPADD,
    "addgroup": GROUPADD,
    "groupdel": GROUPDEL,
    "groupmod": GROUPMOD,
    "gpasswd": GPASSWD,
    "chage": CHAGE,
    "passwd": PASSWD,
}

_REPEATED = re.compile(r"^message repeated (\d+) times: \[\s*(.*?)\s*\]$")
_PAM_PREFIX = re.compile(r"^pam_\w+\((?P<service>[\w.-]+):(?P<facility>\w+)\):\s*")


class Dispatch:
    """A program's rules indexed by the first word of the message they can match.

    First match still wins: each word's candidates are the rules in their original order
    (those that may start with that word, and those with ``first=None``), so a message
    runs the one or two regexes it can match instead of every rule of the program.
    """

    __slots__ = ("anywhere", "by_word")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        words = {w for rule in rules if rule.first for w in rule.first}
        self.by_word = {w: tuple(r for r in rules if r.first is None or w in r.first) for w in words}
        self.anywhere = tuple(r for r in rules if r.first is None)

    def match(self, message: str, f: Fields) -> bool:
        """Write the first matching rule's fields into ``f``; ``False`` (``f`` untouched) when none matches."""
        for rule in self.by_word.get(message.partition(" ")[0], self.anywhere):
            if rule.needs in message:
                m = rule.pattern.match(message)
                if m is not None:
                    _apply(rule, m, f)
                    return True
        return False


DISPATCH: dict[str, Dispatch] = {program: Dispatch(rules) for program, rules in RULES.items()}


def _apply(rule: Rule, m: re.Match[str], f: Fields) -> None:
    f["event.action"] = rule.action
    f["event.category"] = list(rule.category)
    f["event.type"] = list(rule.type)
    if rule.outcome:
        f["event.outcome"] = rule.outcome
    groups = m.groups()
    for index, target, as_int in rule.captures:
        value = groups[index]
        if value and (value := value.strip()):
            f[target] = int(value) if as_int else value
    if rule.extra:
        f.update(rule.extra)
    if rule.post is not None:
        rule.post(f, m)


def _match(rules: tuple[Rule, ...], message: str, f: Fields, search: bool = False) -> bool:
    for rule in rules:
        if rule.needs in message:  # a literal the regex requires: skip it without running it
            m = rule.pattern.search(message) if search else rule.pattern.match(message)
            if m:
                _apply(rule, m, f)
                return True
    return False


def parse_message(program: str, message: str) -> Fields:
    """ECS fields for one message of ``program``; ``{}`` when it says nothing about authentication."""
    fields: Fields = {}
    read_message(program, message, fields)
    return fields


def read_message(program: str, message: str, f: Fields) -> bool:
    """``parse_message`` writing straight into ``f`` (the event being built): ``True`` when
    the message was recognised. ``f`` must not hold ``user.*``, ``source.*``, ``destination.*``
    nor ``related.*`` yet (the syslog header sets none of them); untouched when ``False``.

    Cheap tests come first (``startswith``, the first word, a required literal) so that
    most messages run one regex; the outcome is the same as trying every rule in order.
    """
    if message.startswith("message repeated "):
        repeated = _REPEATED.match(message)
        if repeated:
            if read_message(program, repeated.group(2), f):
                f["ztsoc.auth.repeated"] = int(repeated.group(1))
                return True
            return False
    base, _, module = program.partition("(") if "(" in program else (program, "", "")  # "sshd(pam_unix)"
    pam = _PAM_PREFIX.match(message) if message.startswith("pam_") else None
    if not (
        ((pam or module.startswith("pam")) and _match(PAM, message[pam.end():] if pam else message, f, search=True))
        or ((dispatch := DISPATCH.get(base)) is not None and dispatch.match(message, f))
        or (message.startswith("PAM ") and _match(PAM, message, f))  # sshd's own PAM summary lines
    ):
        return False
    _finish(f)
    return True


def _finish(f: Fields) -> None:
    ip = f.get("source.ip")
    if ip is not None and not _IP.match(ip):
        f["source.domain"] = f.pop("source.ip")
    user, effective, target = f.get("user.name"), f.get("user.effective.name"), f.get("user.target.name")
    if effective or target:
        f["related.user"] = list(dict.fromkeys(u for u in (user, effective, target) if u))
    elif user:
        f["related.user"] = [user]
    source_ip, destination_ip = f.get("source.ip"), f.get("destination.ip")
    if destination_ip:
        f["related.ip"] = [source_ip, destination_ip] if source_ip else [destination_ip]
    elif source_ip:
        f["related.ip"] = [source_ip]
    domain = f.get("source.domain")
    if domain:
        f["related.hosts"] = [domain]
