"""One suite, both backends: the same writes give the same answers, written down here.

Every expected value below was worked out from the corpus by hand (see the comment on each
case), not copied from either backend, so a case failing on one backend only is that
backend's bug (or a real difference to settle in the contract).

Query semantics are Elasticsearch ``query_string``'s with ``default_field: message`` and the
default ``OR`` operator (Lucene classic clause rules: ``a AND b OR c`` is ``+a +b c``).
``message`` is ``text`` (standard analyser: case-insensitive tokens); keyword fields are exact
and case-sensitive; ip fields compare as addresses (CIDR blocks, ranges in address order).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from eventstore import AlertChange, Metric, QuerySyntaxError, Store
from eventstore.errors import AlertNotFound

T = "2024-05-01T"
FLOW_SRC = ["10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.0.10"]
PORTS = [22, 443, 443, 80, 3389]
QNAMES = ["www.example.com", "mail.example.com", "evil.example.net", "login.microsoftonline.com"]


def corpus() -> list[dict[str, Any]]:
    """50 documents: 20 flows (08:00-08:57), 12 DNS (09:00-09:55), 15 sshd/sudo (10:00-10:28),
    1 Windows logon failure (10:30), 2 policy decisions (both 11:00, same instant)."""
    docs: list[dict[str, Any]] = []
    for i in range(20):
        docs.append({
            "@timestamp": f"{T}08:{i * 3:02d}:00.000Z", "event.id": f"f{i:02d}", "event.kind": "event",
            "event.dataset": "network.flow", "event.category": ["network"], "event.type": ["connection", "end"],
            "source.ip": FLOW_SRC[i % 4], "source.port": 40000 + i,
            "destination.ip": "192.168.1.10" if i < 10 else ("8.8.8.8" if i < 15 else "2001:db8::5"),
            "destination.port": PORTS[i % 5], "network.transport": "tcp",
            "source.bytes": 100 * (i + 1), "host.name": "fw-1" if i % 2 == 0 else "fw-2",
        })
    for i in range(12):
        qtype = "AAAA" if i % 4 == 3 else "A"
        doc: dict[str, Any] = {
            "@timestamp": f"{T}09:{i * 5:02d}:00.000Z", "event.id": f"d{i:02d}", "event.kind": "event",
            "event.dataset": "network.dns", "event.category": ["network"],
            "source.ip": f"10.0.0.{i % 3 + 1}", "destination.ip": "10.0.0.53", "destination.port": 53,
            "dns.question.name": QNAMES[i % 4], "dns.question.type": qtype,
            "dns.response_code": "NXDOMAIN" if i % 4 == 2 else "NOERROR",
            "related.ip": [f"10.0.0.{i % 3 + 1}", "10.0.0.53"], "host.name": "dns-1",
        }
        if i % 4 == 0:
            doc["dns.resolved_ip"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
        elif i % 4 == 1:
            doc["dns.resolved_ip"] = ["93.184.216.35"]
        elif i % 4 == 3:
            doc["dns.resolved_ip"] = ["20.190.160.1"]
        docs.append(doc)
    for i in range(15):
        ts = f"{T}10:{i * 2:02d}:00.000Z"
        if i == 0:
            ts = f"{T}12:00:00+02:00"  # 10:00Z written with an offset: stored unchanged
        if i == 1:
            ts = f"{T}10:02:00Z"  # no milliseconds
        if i < 8:
            user, src, outcome, action = "root", "203.0.113.7", "failure", "ssh_login"
            msg = f"Failed password for root from 203.0.113.7 port {50000 + i} ssh2"
        elif i < 10:
            user, src, outcome, action = "admin", "203.0.113.8", "failure", "ssh_login"
            msg = "Failed password for invalid user admin from 203.0.113.8 port 40022 ssh2"
        elif i < 13:
            user, src, outcome, action = "alice", "10.0.0.2", "success", "ssh_login"
            msg = f"Accepted publickey for alice from 10.0.0.2 port {50100 + i} ssh2"
        elif i == 13:
            user, src, outcome, action = "alice", None, "success", "sudo"
            msg = "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart sshd"
        else:
            user, src, outcome, action = "bob", "10.0.0.3", "success", "ssh_login"
            msg = "Accepted password for bob from 10.0.0.3 port 50222 ssh2"
        doc = {
            "@timestamp": ts, "event.id": f"a{i:02d}", "event.kind": "event", "event.dataset": "system.auth",
            "event.category": ["authentication", "process"] if action == "sudo" else ["authentication"],
            "event.action": action, "event.outcome": outcome, "user.name": user, "host.name": "bastion",
            "process.name": "sudo" if action == "sudo" else "sshd", "message": msg,
            "related.user": ["alice", "root", "alice"] if action == "sudo" else [user],
        }
        if src:
            doc["source.ip"] = src
            doc["related.ip"] = [src]
        docs.append(doc)
    docs.append({
        "@timestamp": f"{T}10:30:00.000Z", "event.id": "win-0", "event.kind": "event",
        "event.dataset": "windows.security", "event.category": ["authentication"], "event.code": "4625",
        "winlog.event_id": "4625", "event.outcome": "failure", "user.name": "Administrator",
        "related.user": ["Administrator"], "source.ip": "10.0.0.2", "host.name": "DC01",
        "message": "An account failed to log on.",
    })
    for i, (outcome, risk, dry, src) in enumerate([("failure", 0.91, False, "10.0.0.4"), ("success", 0.12, True, "10.0.0.1")]):
        docs.append({
            "@timestamp": f"{T}11:00:00.000Z", "event.id": f"pol-{i}", "event.kind": "event",
            "event.dataset": "policy.decision", "event.category": ["iam"], "event.outcome": outcome,
            "source.ip": src, "ztsoc.policy.risk": risk, "ztsoc.policy.dry_run": dry,
            "tags": ["zero-trust", "deny"] if outcome == "failure" else ["zero-trust"],
            "message": ("deny" if outcome == "failure" else "allow")
            + f" spiffe://prov.example/ns/web to payroll: risk {risk}",
        })
    return docs


@pytest.fixture
def loaded(store: Store) -> Store:
    result = store.write_events(corpus())
    assert (result.written, result.duplicates, result.errors) == (50, 0, [])
    return store


# (query, expected count, why)
COUNTS: list[tuple[str, int, str]] = [
    ("*", 50, "everything"),
    ("", 50, "empty query is everything"),
    ("event.dataset:network.flow", 20, "keyword exact"),
    ("event.dataset:network.*", 32, "keyword wildcard: 20 flows + 12 dns"),
    ("event.dataset:(network.flow OR network.dns)", 32, "field group"),
    ("event.dataset:Network.flow", 0, "keywords are case-sensitive"),
    ("destination.port:22", 4, "long: i%5==0 of flows"),
    ("destination.port:[80 TO 443]", 12, "inclusive range: 80 (4) + 443 (8)"),
    ("destination.port:{80 TO 443]", 8, "exclusive low bound"),
    ("destination.port:>=3389", 4, "open range"),
    ("destination.port:<80", 16, "22 (4 flows) and 53 (12 dns)"),
    ('source.ip:"10.0.0.0/24"', 39, "CIDR: 20 flows, 12 dns, 4 auth, 1 windows, 2 policy"),
    ('source.ip:"203.0.113.0/24"', 10, "CIDR: the 10 failed logins"),
    ("source.ip:10.0.0.2", 13, "ip term: 5 flows + 4 dns + 3 auth + 1 windows"),
    ("source.ip:[10.0.0.9 TO 10.0.0.10]", 10, "ip range in address order (not string order)"),
    ('destination.ip:"2001:db8::5"', 5, "IPv6 term"),
    ('destination.ip:"2001:db8::/32"', 5, "IPv6 CIDR"),
    ("destination.ip:[8.8.0.0 TO 8.8.255.255]", 5, "ip range"),
    ('related.ip:"10.0.0.53"', 12, "array field: any element"),
    ('related.ip:"10.0.0.1"', 4, "array field, first element; dns i%3==0"),
    ('dns.resolved_ip:"2606:2800:220:1:248:1893:25c8:1946"', 3, "IPv6 inside an array"),
    ('dns.resolved_ip:"93.184.216.0/24"', 6, "CIDR over arrays: i%4 in (0, 1)"),
    ("_exists_:dns.resolved_ip", 9, "exists: 12 dns minus 3 NXDOMAIN"),
    ("event.dataset:network.dns AND NOT _exists_:dns.resolved_ip", 3, "NXDOMAIN answers"),
    ("dns.resolved_ip:*", 9, "field:* is exists"),
    ("dns.question.name:*.example.com", 6, "leading wildcard"),
    ("dns.question.name:*example*", 9, "www, mail, evil"),
    ("dns.question.name:?ail.example.com", 3, "single-character wildcard"),
    ("dns.question.type:A", 9, "keyword exact"),
    ("dns.question.type:a", 0, "keyword case-sensitive"),
    ("user.name:root", 8, "hot keyword"),
    ("user.name:Root", 0, "hot keyword case-sensitive"),
    ("user.name:Administrator", 1, "windows logon"),
    ("related.user:root", 9, "8 failed root logins + the sudo to root"),
    ("event.code:4625", 1, "keyword holding digits"),
    ("message:failed", 11, "text: 10 failed passwords + 'account failed'"),
    ("failed", 11, "bare term searches message"),
    ("FAILED", 11, "text is case-insensitive"),
    ('"failed password"', 10, "phrase"),
    ('message:"password for invalid user"', 2, "longer phrase"),
    ('message:"password failed"', 0, "phrase order matters"),
    ("message:accept*", 4, "wildcard on text tokens"),
    ("message:203.0.113.7", 8, "an IP is one token of the standard analyser"),
    ("message:systemctl", 1, "token inside a path"),
    ("payroll", 2, "both policy decisions"),
    ("ztsoc.policy.dry_run:true", 1, "boolean"),
    ("ztsoc.policy.risk:>0.5", 1, "float range"),
    ("tags:deny", 1, "keyword array"),
    ("event.dataset:system.auth AND event.outcome:failure", 10, "AND"),
    ("event.dataset:system.auth AND NOT event.outcome:failure", 5, "AND NOT"),
    ("event.dataset:system.auth -user.name:root", 7, "prohibit: 15 - 8"),
    ("+event.dataset:system.auth +event.outcome:success", 5, "required clauses"),
    ("user.name:alice OR user.name:bob", 5, "OR: 4 alice + 1 bob"),
    ("user.name:alice user.name:bob", 5, "the implicit operator is OR"),
    ("(user.name:alice OR user.name:bob) AND event.action:sudo", 1, "grouping"),
    ("NOT event.dataset:network.flow", 30, "pure negation: everything else"),
    ("-event.dataset:network.flow", 30, "pure prohibition"),
    ("NOT user.name:root", 42, "negation includes documents without the field"),
    ("event.dataset:network.flow AND destination.port:443 AND host.name:fw-1", 4, "443 at even i: 2, 6, 12, 16"),
    ("user.name:alice AND user.name:bob OR user.name:root", 0, "Lucene classic: +alice +bob root"),
    ("event.dataset:network.dns AND dns.question.name:(www.example.com OR mail.example.com)", 6, "nested"),
    ('@timestamp:["2024-05-01T08:00:00Z" TO "2024-05-01T08:30:00Z"}', 10, "time range, exclusive end"),
    ("@timestamp:2024-05-01", 50, "a date names its whole day"),
    ('@timestamp:["2024-05-01T10:00:00Z" TO *]', 18, "15 auth + windows + 2 policy"),
    ("@timestamp:<2024-05-01T09", 20, "lt takes the first millisecond of 09:00: the flows"),
    ("@timestamp:>2024-05-01T10", 2, "gt takes the last millisecond of the 10 o'clock hour"),
    ("@timestamp:<=2024-05-01T08", 20, "lte takes the last millisecond of the 8 o'clock hour"),
    ('@timestamp:"2024-05-01T10:00:00Z"', 1, "the +02:00 document, as UTC"),
    ("@timestamp:<now", 50, "date math: all in the past"),
    ("@timestamp:>now-1h", 0, "date math: nothing recent"),
    ("process.name:/ss.d/", 14, "regexp on a keyword, anchored: sshd, not sudo"),
    ("user.name:ad*n", 2, "inner wildcard, case-sensitive: admin, not Administrator"),
    ("ztsoc.policy.risk:0.91", 1, "float term"),
    ("destination.port:(22 OR 80)", 8, "numbers in a field group"),
    ("_exists_:message", 18, "15 auth + windows + 2 policy"),
    ("NOT _exists_:source.ip", 1, "the sudo line has no source"),
    ('source.ip:"10.0.0.0/24" AND NOT source.ip:10.0.0.2', 26, "39 - 13"),
    ("event.id:f07", 1, "by id"),
    ("event.id:(a00 OR d00 OR nope)", 2, "ids"),
    ("user.name:rxxt~", 0, "fuzzy AUTO: one edit for four letters, root is two away"),
    ("user.name:rxxt~2", 8, "fuzzy with two edits: root"),
    ("user.name:orot~1", 8, "a transposition is one edit"),
    ("user.name:bbo~", 1, "bob, one transposition"),
    ("message:passwrod~", 11, "fuzzy on text tokens: password (10 failed + bob's accepted)"),
    ("message:paswod~", 11, "six letters: two edits"),
    ('"failed root"~1', 0, "failed@0 root@3 needs two moves"),
    ('"failed root"~2', 8, "sloppy phrase"),
    ('"root failed"~3', 0, "reversed order needs four"),
    ('"password failed"~2', 10, "a swap of neighbours costs two"),
    ("message:[A TO B]", 9, "range over text tokens, bounds lowercased: account, accepted, admin, alice, allow, an..."),
    ("message:{alice TO b}", 2, "strictly between: 'allow' (pol-1) and 'an' (win-0)"),
    ("user.name:(alice bob)", 0, "words side by side are one value: the keyword 'alice bob'"),
    ("event.category:(network authentication)", 0, "same: no such keyword"),
    ("user.name:(alice bob) OR user.name:root", 8, "only root"),
    ("failed password", 12, "on message the words are tokens again, OR-ed: 11 failed + bob's password"),
    ("message:(accepted publickey)", 4, "accepted (4) or publickey (alice's 3)"),
    ("user.name:alice bob", 5, "bob is a bare word: message"),
]


def test_counts(loaded: Store) -> None:
    wrong = []
    for query, expected, why in COUNTS:
        got = loaded.count(query)
        total = loaded.search(query, limit=0).total
        if (got, total) != (expected, expected):
            wrong.append(f"{query!r}: count={got} search.total={total}, expected {expected} ({why})")
    assert wrong == []


def test_time_window(loaded: Store) -> None:
    nine, ten = datetime(2024, 5, 1, 9, tzinfo=UTC), datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert loaded.count(since=nine, until=ten) == 12  # [since, until): the DNS hour
    assert loaded.count("event.dataset:system.auth", since=ten, until=datetime(2024, 5, 1, 10, 1, tzinfo=UTC)) == 1
    assert loaded.count(since=datetime(2024, 5, 1, 11, tzinfo=UTC)) == 2
    assert loaded.count(until=datetime(2024, 5, 1, 8, 3, tzinfo=UTC)) == 1


def _ids(hits: list[dict[str, Any]]) -> list[str]:
    return [h["event.id"] for h in hits]


def test_search_sort_limit_fields(loaded: Store) -> None:
    res = loaded.search("event.dataset:system.auth", limit=3)
    assert res.total == 15
    assert _ids(res.hits) == ["a14", "a13", "a12"]  # newest first
    assert _ids(loaded.search("event.dataset:network.flow", sort="source.bytes", descending=False, limit=3).hits) == [
        "f00", "f01", "f02"]
    assert _ids(loaded.search("event.dataset:network.flow", sort="source.bytes", limit=2).hits) == ["f19", "f18"]
    # ties broken by event.id in the same direction
    assert _ids(loaded.search("event.dataset:network.flow", sort="destination.port", descending=False, limit=5).hits) == [
        "f00", "f05", "f10", "f15", "f03"]
    assert _ids(loaded.search("event.dataset:policy.decision").hits) == ["pol-1", "pol-0"]
    # documents without the sort field come last, by event.id
    hits = loaded.search("*", sort="source.bytes", descending=False, limit=25).hits
    assert _ids(hits)[19:] == ["f19", "a00", "a01", "a02", "a03", "a04"]
    # field selection
    res = loaded.search("user.name:bob", fields=["event.id", "source.ip"])
    assert res.hits == [{"event.id": "a14", "source.ip": "10.0.0.3"}]


def test_documents_stored_unchanged(loaded: Store) -> None:
    doc = loaded.get_event("a00")
    assert doc is not None
    assert doc["@timestamp"] == "2024-05-01T12:00:00+02:00"
    assert doc == next(d for d in corpus() if d["event.id"] == "a00")
    assert loaded.get_event("nope") is None


def test_scan(loaded: Store) -> None:
    assert _ids(list(loaded.scan("event.dataset:network.dns", batch_size=5))) == [f"d{i:02d}" for i in range(12)]
    every = list(loaded.scan(batch_size=7))
    assert len(every) == 50
    assert _ids(every)[:2] == ["f00", "f01"] and _ids(every)[-2:] == ["pol-0", "pol-1"]
    assert list(loaded.scan("user.name:bob", fields=["user.name"])) == [{"user.name": "bob"}]


def test_aggregate_terms(loaded: Store) -> None:
    assert loaded.aggregate(["event.dataset"]) == [
        {"event.dataset": "network.flow", "count": 20},
        {"event.dataset": "system.auth", "count": 15},
        {"event.dataset": "network.dns", "count": 12},
        {"event.dataset": "policy.decision", "count": 2},
        {"event.dataset": "windows.security", "count": 1},
    ]
    assert loaded.aggregate(["event.dataset"], limit=2) == [
        {"event.dataset": "network.flow", "count": 20},
        {"event.dataset": "system.auth", "count": 15},
    ]
    # ties in address order: .9 before .10
    assert loaded.aggregate(["source.ip"], query="event.dataset:network.flow") == [
        {"source.ip": ip, "count": 5} for ip in FLOW_SRC
    ]
    # numbers in numeric order
    assert loaded.aggregate(["destination.port"], query="event.dataset:network.flow") == [
        {"destination.port": 443, "count": 8},
        {"destination.port": 22, "count": 4},
        {"destination.port": 80, "count": 4},
        {"destination.port": 3389, "count": 4},
    ]
    assert loaded.aggregate(["event.dataset", "event.outcome"], query="event.dataset:system.auth") == [
        {"event.dataset": "system.auth", "event.outcome": "failure", "count": 10},
        {"event.dataset": "system.auth", "event.outcome": "success", "count": 5},
    ]


def test_aggregate_arrays(loaded: Store) -> None:
    # a document counts once per value of a multi-valued field
    assert loaded.aggregate(["event.category"]) == [
        {"event.category": "network", "count": 32},
        {"event.category": "authentication", "count": 16},
        {"event.category": "iam", "count": 2},
        {"event.category": "process", "count": 1},
    ]
    assert loaded.aggregate(["related.ip"], query="event.dataset:network.dns") == [
        {"related.ip": "10.0.0.53", "count": 12},
        {"related.ip": "10.0.0.1", "count": 4},
        {"related.ip": "10.0.0.2", "count": 4},
        {"related.ip": "10.0.0.3", "count": 4},
    ]
    # ["alice", "root", "alice"] counts once for alice; byte order puts "Administrator" before "bob"
    assert loaded.aggregate(["related.user"]) == [
        {"related.user": "root", "count": 9},
        {"related.user": "alice", "count": 4},
        {"related.user": "admin", "count": 2},
        {"related.user": "Administrator", "count": 1},
        {"related.user": "bob", "count": 1},
    ]
    rows = loaded.aggregate(["event.dataset"], {"ips": Metric("cardinality", "related.ip")}, query="event.dataset:network.dns")
    assert rows == [{"event.dataset": "network.dns", "count": 12, "ips": 4}]


def test_aggregate_metrics(loaded: Store) -> None:
    metrics = {
        "bytes": Metric("sum", "source.bytes"),
        "sources": Metric("cardinality", "source.ip"),
        "smallest": Metric("min", "source.bytes"),
        "largest": Metric("max", "source.bytes"),
        "mean": Metric("avg", "source.bytes"),
        "first": Metric("min", "@timestamp"),
        "n": Metric("count"),
    }
    assert loaded.aggregate(["host.name"], metrics, query="event.dataset:network.flow") == [
        {"host.name": "fw-1", "count": 10, "bytes": 10000, "sources": 2, "smallest": 100, "largest": 1900,
         "mean": 1000.0, "first": "2024-05-01T08:00:00.000Z", "n": 10},
        {"host.name": "fw-2", "count": 10, "bytes": 11000, "sources": 2, "smallest": 200, "largest": 2000,
         "mean": 1100.0, "first": "2024-05-01T08:03:00.000Z", "n": 10},
    ]
    assert loaded.aggregate([], {"bytes": Metric("sum", "source.bytes")}) == [{"count": 50, "bytes": 21000}]
    # no value at all: sum is None (not 0), so "absent" and "zero" stay apart
    assert loaded.aggregate(["event.dataset"], {"bytes": Metric("sum", "source.bytes")}, query="event.dataset:system.auth") == [
        {"event.dataset": "system.auth", "count": 15, "bytes": None}]
    assert loaded.aggregate(["event.dataset"], query="event.dataset:nothing") == []


def test_aggregate_histogram(loaded: Store) -> None:
    assert loaded.aggregate([], interval_seconds=3600) == [
        {"@timestamp": "2024-05-01T08:00:00.000Z", "count": 20},
        {"@timestamp": "2024-05-01T10:00:00.000Z", "count": 16},
        {"@timestamp": "2024-05-01T09:00:00.000Z", "count": 12},
        {"@timestamp": "2024-05-01T11:00:00.000Z", "count": 2},
    ]
    assert loaded.aggregate(["event.dataset"], interval_seconds=1800, query="event.dataset:network.flow") == [
        {"@timestamp": "2024-05-01T08:00:00.000Z", "event.dataset": "network.flow", "count": 10},
        {"@timestamp": "2024-05-01T08:30:00.000Z", "event.dataset": "network.flow", "count": 10},
    ]


def test_write_idempotent_and_errors(loaded: Store) -> None:
    again = loaded.write_events(corpus())
    assert (again.written, again.duplicates, again.errors) == (0, 50, [])
    batch = [
        {"@timestamp": f"{T}12:00:00Z", "message": "no id"},
        {"@timestamp": f"{T}12:00:01Z", "event.id": "new-1", "event.dataset": "test"},
        {"@timestamp": "yesterday-ish", "event.id": "bad-ts"},
        {"event.id": "no-ts"},
        {"@timestamp": f"{T}12:00:02Z", "event.id": "new-2", "event.dataset": "test"},
        {"@timestamp": f"{T}12:00:02Z", "event.id": "new-2", "event.dataset": "test"},
    ]
    res = loaded.write_events(batch)
    assert (res.written, res.duplicates) == (2, 1)
    assert [e[0] for e in res.errors] == ["0", "bad-ts", "no-ts"]
    assert loaded.count() == 52
    assert loaded.count("event.dataset:test") == 2


BAD_QUERIES = [
    "event.dataset:(network.flow",
    "user.name:[a TO",
    "AND",
    "source.ip:notanip",
    "destination.port:abc",
]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_queries(loaded: Store, query: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        loaded.search(query)
    assert info.value.query == query
    with pytest.raises(QuerySyntaxError):
        loaded.count(query)


def test_syntax_error_position(loaded: Store) -> None:
    query = "event.dataset:(network.flow"
    with pytest.raises(QuerySyntaxError) as info:
        loaded.count(query)
    assert info.value.position == len(query)


def test_alerts(loaded: Store) -> None:
    alerts = [
        {"@timestamp": f"{T}10:15:00.000Z", "event.id": "al-1", "event.kind": "alert", "rule.name": "ssh brute force",
         "rule.id": "r1", "ztsoc.alert.level": "high", "source.ip": "203.0.113.7", "message": "8 failed logins"},
        {"@timestamp": f"{T}10:16:00.000Z", "event.id": "al-2", "event.kind": "alert", "rule.name": "invalid user",
         "rule.id": "r2", "ztsoc.alert.level": "medium", "source.ip": "203.0.113.8"},
    ]
    res = loaded.put_alerts(alerts)
    assert (res.written, res.errors) == (2, [])
    first = loaded.get_alert("al-1")
    assert first is not None
    assert first["ztsoc.alert.status"] == "open" and first["ztsoc.alert.history"] == []
    assert loaded.count("ztsoc.alert.status:open", index="alerts") == 2
    assert loaded.count(index="events") == 50  # alerts live apart

    updated = loaded.update_alert("al-1", AlertChange("ana", "acknowledge", {"ztsoc.alert.status": "acknowledged",
                                                                          "ztsoc.alert.assignee": "ana"}, "on it"))
    assert updated["ztsoc.alert.status"] == "acknowledged"
    [entry] = updated["ztsoc.alert.history"]
    assert entry["actor"] == "ana" and entry["action"] == "acknowledge" and entry["note"] == "on it"
    assert entry["changes"] == {"ztsoc.alert.status": {"from": "open", "to": "acknowledged"},
                                "ztsoc.alert.assignee": {"from": None, "to": "ana"}}
    assert entry["@timestamp"].endswith("Z")
    assert loaded.get_alert("al-1") == updated

    # a detection rerun refreshes the alert but keeps the analyst's fields and history
    rerun = dict(alerts[0], **{"message": "9 failed logins", "ztsoc.alert.status": "open"})
    assert loaded.put_alerts([rerun]).written == 1
    again = loaded.get_alert("al-1")
    assert again is not None
    assert again["message"] == "9 failed logins"
    assert again["ztsoc.alert.status"] == "acknowledged" and again["ztsoc.alert.assignee"] == "ana"
    assert len(again["ztsoc.alert.history"]) == 1

    second = loaded.update_alert("al-1", AlertChange("bob", "close", {"ztsoc.alert.status": "closed",
                                                                     "ztsoc.alert.close_reason": "blocked"}))
    assert [h["action"] for h in second["ztsoc.alert.history"]] == ["acknowledge", "close"]
    assert second["ztsoc.alert.history"][1]["note"] is None

    assert loaded.count("ztsoc.alert.status:closed", index="alerts") == 1
    assert _ids(loaded.search('source.ip:"203.0.113.0/24"', index="alerts").hits) == ["al-2", "al-1"]
    assert loaded.aggregate(["ztsoc.alert.status"], index="alerts") == [
        {"ztsoc.alert.status": "closed", "count": 1},
        {"ztsoc.alert.status": "open", "count": 1},
    ]
    with pytest.raises(AlertNotFound):
        loaded.update_alert("nope", AlertChange("ana", "close", {"ztsoc.alert.status": "closed"}))
    assert loaded.get_alert("nope") is None
    missing = loaded.put_alerts([{"@timestamp": f"{T}10:00:00Z", "rule.name": "no id"}])
    assert missing.written == 0 and len(missing.errors) == 1


def test_state(store: Store) -> None:
    assert store.get_state("cursor", "sshd") is None
    store.put_state("cursor", "sshd", {"offset": 10, "inode": 5})
    store.put_state("cursor", "auth", {"offset": 3})
    store.put_state("model", "auth", {"version": 1})
    store.put_state("cursor", "sshd", {"offset": 20, "inode": 5})
    assert store.get_state("cursor", "sshd") == {"offset": 20, "inode": 5}
    assert store.list_state("cursor") == [("auth", {"offset": 3}), ("sshd", {"offset": 20, "inode": 5})]
    store.delete_state("cursor", "auth")
    store.delete_state("cursor", "never-there")
    assert store.list_state("cursor") == [("sshd", {"offset": 20, "inode": 5})]
    assert store.list_state("model") == [("auth", {"version": 1})]


def test_status(loaded: Store) -> None:
    st = loaded.status()
    assert (st.events, st.alerts) == (50, 0)
    assert st.per_dataset == {"network.flow": 20, "system.auth": 15, "network.dns": 12, "policy.decision": 2,
                              "windows.security": 1}
    assert st.first_event == "2024-05-01T08:00:00.000Z"
    assert st.last_event == "2024-05-01T11:00:00.000Z"
    assert st.size_bytes > 0
