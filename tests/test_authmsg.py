"""sshd, PAM, sudo, su and shadow-utils messages -> ECS fields (the parsers syslog and journald share)."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.authmsg import DISPATCH, PAM, RULES, _apply, _match, parse_message, read_message
from tests.ecs_allowed import check

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("sshd", "Accepted password for alice from 192.0.2.10 port 50122 ssh2",
     {"event.action": "ssh_login", "event.outcome": "success", "user.name": "alice", "source.ip": "192.0.2.10",
      "source.port": 50122, "ztsoc.auth.method": "password", "event.category": ["authentication", "session"]}),
    ("sshd", "Accepted publickey for bob from 2001:db8::5 port 4242 ssh2: ED25519 SHA256:abcdef",
     {"event.outcome": "success", "user.name": "bob", "source.ip": "2001:db8::5", "ztsoc.auth.method": "publickey"}),
    ("sshd", "Failed password for root from 198.51.100.7 port 1234 ssh2",
     {"event.action": "ssh_login", "event.outcome": "failure", "user.name": "root", "source.ip": "198.51.100.7"}),
    ("sshd", "Failed publickey for invalid user admin from 198.51.100.7 port 1234 ssh2",
     {"event.outcome": "failure", "user.name": "admin", "event.reason": "invalid user",
      "ztsoc.auth.method": "publickey"}),
    ("sshd", "Failed none for invalid user  0101 from 198.51.100.7 port 1234 ssh2",
     {"event.outcome": "failure", "user.name": "0101"}),
    ("sshd", "Invalid user webmaster from 173.234.31.186",
     {"event.action": "ssh_invalid_user", "user.name": "webmaster", "source.ip": "173.234.31.186"}),
    ("sshd", "Invalid user test from 10.1.1.1 port 5555",
     {"event.action": "ssh_invalid_user", "source.port": 5555}),
    ("sshd", "input_userauth_request: invalid user webmaster [preauth]",
     {"event.action": "ssh_invalid_user", "user.name": "webmaster"}),
    ("sshd", "Received disconnect from 103.99.0.122: 11: Bye Bye [preauth]",
     {"event.action": "ssh_disconnect", "source.ip": "103.99.0.122", "event.reason": "Bye Bye",
      "event.category": ["network"], "event.type": ["connection", "end"]}),
    ("sshd", "Disconnected from authenticating user root 203.0.113.9 port 40022 [preauth]",
     {"event.action": "ssh_disconnect", "user.name": "root", "source.port": 40022}),
    ("sshd", "Connection closed by invalid user oracle 203.0.113.9 port 40022 [preauth]",
     {"event.action": "ssh_disconnect", "user.name": "oracle"}),
    ("sshd", "error: maximum authentication attempts exceeded for root from 203.0.113.9 port 40022 ssh2 [preauth]",
     {"event.action": "ssh_max_auth_attempts", "user.name": "root", "event.outcome": "failure"}),
    ("sshd", "Disconnecting: Too many authentication failures for admin [preauth]",
     {"event.action": "ssh_max_auth_attempts", "user.name": "admin"}),
    ("sshd", "PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.9.8.7  user=root",
     {"event.action": "pam_authentication_failure", "ztsoc.auth.attempts": 5, "user.name": "root",
      "source.ip": "10.9.8.7"}),
    ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=ec2.example.com  "
             "user=git", {"event.outcome": "failure", "source.domain": "ec2.example.com", "user.name": "git"}),
    ("sshd", "pam_unix(sshd:session): session opened for user fztu by (uid=0)",
     {"event.action": "session_opened", "user.name": "fztu", "event.category": ["session"], "event.type": ["start"]}),
    ("sshd(pam_unix)", "session closed for user test", {"event.action": "session_closed", "user.name": "test"}),
    ("sshd", "message repeated 5 times: [ Failed password for root from 1.2.3.4 port 22 ssh2]",
     {"event.outcome": "failure", "ztsoc.auth.repeated": 5, "user.name": "root"}),
    ("sshd", "reverse mapping checking getaddrinfo for ns.example.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
     {"event.action": "ssh_reverse_mapping_failed", "source.ip": "173.234.31.186", "source.domain": "ns.example.com"}),
    ("sudo", "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update; ls",
     {"event.action": "sudo_command", "user.name": "alice", "user.effective.name": "root",
      "process.command_line": "/usr/bin/apt update; ls", "process.working_directory": "/home/alice",
      "event.outcome": "success"}),
    ("sudo", "mallory : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh",
     {"event.action": "sudo_auth_failure", "event.outcome": "failure", "user.name": "mallory",
      "event.category": ["authentication"]}),
    ("sudo", "eve : user NOT in sudoers ; TTY=pts/2 ; PWD=/ ; USER=root ; COMMAND=/bin/bash",
     {"event.action": "sudo_denied", "event.outcome": "failure", "event.reason": "user NOT in sudoers"}),
    ("sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
     {"event.action": "session_opened", "user.name": "alice", "user.effective.name": "root"}),
    ("su", "(to root) alice on pts/0", {"event.action": "su", "event.outcome": "success", "user.name": "alice",
                                        "user.effective.name": "root"}),
    ("su", "FAILED SU (to root) bob on pts/3", {"event.action": "su", "event.outcome": "failure", "user.name": "bob"}),
    ("su", "pam_unix(su:auth): authentication failure; logname=bob uid=1001 euid=0 tty=pts/3 ruser=bob rhost=  user=root",
     {"event.action": "pam_authentication_failure", "user.name": "root"}),
    ("useradd", "new user: name=carol, UID=1002, GID=1002, home=/home/carol, shell=/bin/bash, from=/dev/pts/0",
     {"event.action": "user_created", "user.target.name": "carol", "user.target.id": "1002", "group.id": "1002",
      "event.category": ["iam"], "event.type": ["user", "creation"]}),
    ("useradd", "new group: name=carol, GID=1002", {"event.action": "group_created", "group.name": "carol"}),
    ("groupadd", "group added to /etc/group: name=devs, GID=1003", {"event.action": "group_created", "group.name": "devs"}),
    ("usermod", "add 'carol' to group 'sudo'", {"event.action": "user_added_to_group", "user.target.name": "carol",
                                                "group.name": "sudo", "event.type": ["group", "change"]}),
    ("usermod", "add 'carol' to shadow group 'sudo'", {"event.action": "user_added_to_group"}),
    ("usermod", "lock user 'carol' password", {"event.action": "user_locked", "user.target.name": "carol"}),
    ("userdel", "delete user 'carol'", {"event.action": "user_deleted", "event.type": ["user", "deletion"]}),
    ("userdel", "removed group 'carol' owned by 'carol'", {"event.action": "group_deleted", "group.name": "carol"}),
    ("groupdel", "group 'devs' removed", {"event.action": "group_deleted", "group.name": "devs"}),
    ("passwd", "pam_unix(passwd:chauthtok): password changed for carol",
     {"event.action": "password_changed", "user.target.name": "carol", "event.type": ["user", "change"]}),
    ("gpasswd", "user carol added by root to group docker",
     {"event.action": "user_added_to_group", "user.name": "root", "user.target.name": "carol", "group.name": "docker"}),
    ("chage", "changed password expiry for carol", {"event.action": "password_expiry_changed"}),
]


@pytest.mark.parametrize(("program", "message", "expected"), CASES, ids=[c[1][:40] for c in CASES])
def test_message(program: str, message: str, expected: dict[str, Any]) -> None:
    fields = parse_message(program, message)
    for key, value in expected.items():
        assert fields.get(key) == value, (key, fields)
    check({"event.kind": "event", **fields})
    users = {fields[k] for k in ("user.name", "user.effective.name", "user.target.name") if k in fields}
    assert set(fields.get("related.user", [])) == users
    if "source.ip" in fields:
        assert fields["related.ip"] == [fields["source.ip"]]


@pytest.mark.parametrize(("program", "message"), [
    ("sshd", "Server listening on 0.0.0.0 port 22."),  # known, not auth-relevant beyond process info
    ("cron", "(root) CMD (run-parts /etc/cron.hourly)"),
    ("sshd", "something sshd never says"),
])
def test_other_messages_are_not_misread(program: str, message: str) -> None:
    fields = parse_message(program, message)
    assert "user.name" not in fields
    assert fields.get("event.outcome") != "failure"


def test_every_rule_yields_ecs_allowed_values() -> None:
    for rules in RULES.values():
        for rule in rules:
            check({"event.kind": "event", "event.category": list(rule.category), "event.type": list(rule.type),
                   **({"event.outcome": rule.outcome} if rule.outcome else {})})


@pytest.mark.parametrize(("program", "message", "expected"), [
    ("klogind", "Authentication failed from 163.27.187.39 (163.27.187.39): Permission denied in replay cache code",
     {"event.outcome": "failure", "source.ip": "163.27.187.39"}),
    ("ftpd", "connection from 207.30.238.8 (host8.topspot.net) at Sun Jul 24 02:38:22 2005",
     {"event.action": "ftp_connection", "source.ip": "207.30.238.8", "source.domain": "host8.topspot.net"}),
    ("ftpd", "ANONYMOUS FTP LOGIN FROM 84.102.20.2,  (anonymous)", {"user.name": "anonymous", "event.outcome": "success"}),
    ("login", "FAILED LOGIN (1) on '/dev/tty1' FOR 'root', Authentication failure",
     {"event.outcome": "failure", "user.name": "root", "ztsoc.process.tty.name": "/dev/tty1"}),
])
def test_legacy_daemons(program: str, message: str, expected: dict[str, Any]) -> None:
    fields = parse_message(program, message)
    for key, value in expected.items():
        assert fields.get(key) == value, (key, fields)
    check({"event.kind": "event", **fields})


def _first_rule_in_order(rules: tuple[Any, ...], message: str, search: bool = False) -> dict[str, Any] | None:
    """What the dispatch must agree with: every rule tried in order, no shortcut."""
    for rule in rules:
        m = rule.pattern.search(message) if search else rule.pattern.match(message)
        if m:
            fields: dict[str, Any] = {}
            _apply(rule, m, fields)
            return fields
    return None


def _dispatched(program: str, message: str) -> dict[str, Any] | None:
    fields: dict[str, Any] = {}
    return fields if DISPATCH[program].match(message, fields) else None


def test_dispatch_by_first_word_picks_the_rule_an_ordered_scan_picks() -> None:
    """The first-word index and the required literals only skip rules that cannot match."""
    messages = [m for _, m, _ in CASES] + [
        "error: maximum authentication attempts exceeded for root from 1.2.3.4 port 5 ssh2 [preauth]",
        "error: Received disconnect from 1.2.3.4 port 5:3: Auth fail [preauth]",
        "error: kex_exchange_identification: Connection closed by remote host",
        "Disconnecting: Too many authentication failures [preauth]",
        "Disconnecting invalid user admin 1.2.3.4 port 5: Too many authentication failures [preauth]",
        "Connection from 1.2.3.4 port 5 on 10.0.0.1 port 22", "Connection reset by 1.2.3.4 port 22",
        "Bad protocol version identification 'GET /' from 1.2.3.4 port 5", "Received signal 15; terminating.",
        "PAM service(sshd) ignoring max retries; 6 > 3", "FAILED su for root by alice", "+ pts/0 alice:root",
        "- pts/0 alice:root", "change user 'carol' shell", "unlock user 'carol' password",
        "removed shadow group 'carol' owned by 'carol'", "group changed in /etc/group (group devs/1003, new name: x)",
        "password for 'carol' changed by 'root'", "ROOT LOGIN  on 'tty1'", "LOGIN ON tty1 BY root",
        "FTP LOGIN FAILED FROM 1.2.3.4 [1.2.3.4], bob", "Kerberos authentication failed",
        "alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls", "", " leading space", "Accepted", "nothing",
        "Authentication failed from 163.27.187.39 (h): Permission denied", "connection from 207.30.238.8 (h) at Sun",
        "ANONYMOUS FTP LOGIN FROM 84.102.20.2,  (anonymous)", "FTP LOGIN FROM 1.2.3.4 [1.2.3.4], bob",
        "FAILED LOGIN (1) on '/dev/tty1' FOR 'root', Authentication failure",
        "Did not receive identification string from 1.2.3.4 port 5",
        "Address 1.2.3.4 maps to x.example.com, but this does not map back to the address",
        "Server listening on 0.0.0.0 port 22.", "fatal: Read from socket failed [preauth]",
        "Successful su for root by alice", "failed adding user 'x', exit code: 9", "delete 'carol' from group 'sudo'",
        "change user name 'a' to 'b'", "user carol removed by root from group docker",
    ]
    variants = [v for m in messages for v in (m, m.upper(), m[: len(m) // 2], "error: " + m, " " + m)]
    unmatched = {(program, rule.action, rule.pattern.pattern[:30]) for program, rules in RULES.items() for rule in rules
                 if not any(rule.pattern.match(v) for v in variants)}
    assert not unmatched, "every rule needs an example here, so a wrong first word shows"
    for program, rules in RULES.items():
        for message in variants:
            assert _dispatched(program, message) == _first_rule_in_order(rules, message), (program, message)


def test_required_literals_never_skip_a_pam_match() -> None:
    for message in [m for _, m, _ in CASES] + ["PAM 2 more authentication failures; rhost=1.2.3.4 user=x",
                                               "account bob has expired (account expired)", "conversation failed",
                                               "auth could not identify password for [bob]", "check pass; user unknown"]:
        fields: dict[str, Any] = {}
        got = fields if _match(PAM, message, fields, search=True) else None
        assert got == _first_rule_in_order(PAM, message, search=True), message


def test_read_message_writes_into_the_event_or_leaves_it_alone() -> None:
    event: dict[str, Any] = {"message": "x", "host.name": "h"}
    assert read_message("sshd", "Failed password for root from 10.0.0.1 port 22 ssh2", event)
    assert event["user.name"] == "root" and event["host.name"] == "h" and event["related.ip"] == ["10.0.0.1"]
    untouched: dict[str, Any] = {"message": "x"}
    assert not read_message("cron", "(root) CMD (true)", untouched)
    assert not read_message("sshd", "something sshd never says", untouched)
    assert not read_message("sshd", "message repeated 2 times: [ nothing known ]", untouched)
    assert untouched == {"message": "x"}
    assert parse_message("sshd", "message repeated 3 times: [ nothing known ]") == {}
