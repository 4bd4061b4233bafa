"""The Lucene query parser (eventstore.query.lucene) and the value readers it uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eventstore.errors import QuerySyntaxError
from eventstore.query import ast, parse
from eventstore.query.values import (
    analyze,
    canonical_ip,
    glob_to_regex,
    glob_to_sqlite,
    ip_block,
    ip_key,
    parse_date,
    phrase_slop,
    within_edits,
)

NOW = datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def p(query: str) -> ast.Node:
    return parse(query, now=NOW)


# -- structure: Lucene classic clause rules -----------------------------------------------


def test_match_all() -> None:
    for q in ("", "  ", "*", "*:*"):
        assert p(q) == ast.MatchAll()


def test_field_term_by_type() -> None:
    assert p("user.name:root") == ast.Equals("user.name", "root")
    assert p("destination.port:22") == ast.Equals("destination.port", 22)
    assert p("ztsoc.policy.risk:0.5") == ast.Equals("ztsoc.policy.risk", 0.5)
    assert p("tls.established:true") == ast.Equals("tls.established", True)
    assert p("source.ip:10.0.0.1") == ast.Equals("source.ip", "10.0.0.1")
    assert p('source.ip:"::ffff:10.0.0.1"') == ast.Equals("source.ip", "10.0.0.1")
    assert p("unknown.field:Value") == ast.Equals("unknown.field", "Value")  # unknown fields are keywords


def test_bare_terms_search_message() -> None:
    assert p("Failed") == ast.TextPhrase("message", ("failed",))
    assert p('"Failed password"') == ast.TextPhrase("message", ("failed", "password"))
    assert p("pass*") == ast.TextPattern("message", "^pass.*$")
    # one word the analyser splits: its tokens, joined by the default operator
    assert p("message:foo-bar") == ast.Bool(should=(ast.TextPhrase("message", ("foo",)), ast.TextPhrase("message", ("bar",))))


def test_words_side_by_side_are_one_value() -> None:
    assert p("user.name:(alice bob)") == ast.Equals("user.name", "alice bob")
    assert p("failed password") == ast.Bool(should=(ast.TextPhrase("message", ("failed",)),
                                                   ast.TextPhrase("message", ("password",))))
    assert p("user.name:(alice OR bob)") == ast.Bool(should=(ast.Equals("user.name", "alice"),
                                                            ast.Equals("user.name", "bob")))
    assert p("user.name:(alice bob*)") == ast.Bool(should=(ast.Equals("user.name", "alice"),
                                                          ast.Glob("user.name", "bob*", "^bob.*$")))


def test_default_operator_is_or() -> None:
    a, b = ast.Equals("user.name", "a"), ast.Equals("user.name", "b")
    assert p("user.name:a user.name:b") == ast.Bool(should=(a, b))
    assert parse("user.name:a user.name:b", default_operator="AND") == ast.Bool(must=(a, b))


def test_lucene_classic_precedence() -> None:
    a, b, c = (ast.Equals("f", v) for v in "abc")
    # a AND b OR c  ->  +a +b c : c only scores, so it does not filter
    assert p("f:a AND f:b OR f:c") == ast.Bool(must=(a, b))
    # a OR b AND c  ->  a +b +c
    assert p("f:a OR f:b AND f:c") == ast.Bool(must=(b, c))
    assert p("(f:a OR f:b) AND f:c") == ast.Bool(must=(ast.Bool(should=(a, b)), c))


def test_required_prohibited_not() -> None:
    a, b, c = (ast.Equals("f", v) for v in "abc")
    assert p("+f:a f:b -f:c") == ast.Bool(must=(a,), must_not=(c,))
    assert p("f:a AND NOT f:b") == ast.Bool(must=(a,), must_not=(b,))
    assert p("NOT f:a") == ast.Bool(must_not=(a,))
    assert p("f:a OR NOT f:b") == ast.Bool(should=(a,), must_not=(b,))  # Lucene: NOT always excludes


def test_field_groups() -> None:
    assert p("event.category:(network OR authentication)") == ast.Bool(
        should=(ast.Equals("event.category", "network"), ast.Equals("event.category", "authentication")))
    assert p("user.name:(-root)") == ast.Bool(must_not=(ast.Equals("user.name", "root"),))


def test_exists_and_star() -> None:
    assert p("_exists_:user.name") == ast.Exists("user.name")
    assert p("user.name:*") == ast.Exists("user.name")


def test_wildcards_and_escapes() -> None:
    assert p("dns.question.name:*.example.com") == ast.Glob("dns.question.name", "*.example.com", r"^.*\.example\.com$")
    assert p(r"url.path:\/a\*b*") == ast.Glob("url.path", "/a[*]b*", r"^/a\*b.*$")
    assert p(r"url.path:a\:b") == ast.Equals("url.path", "a:b")
    assert p("process.name:/ss[h]d/") == ast.Regexp("process.name", "ss[h]d")


def test_ranges_by_type() -> None:
    assert p("destination.port:[1 TO 1024}") == ast.Between("destination.port", "num", 1, 1024, True, False)
    assert p("destination.port:>=1024") == ast.Between("destination.port", "num", 1024, None, True, True)
    assert p("destination.port:<10") == ast.Between("destination.port", "num", None, 10, True, False)
    assert p("event.severity:[-5 TO 5]") == ast.Between("event.severity", "num", -5, 5)
    assert p("user.name:[a TO m]") == ast.Between("user.name", "str", "a", "m")
    assert p("source.ip:[10.0.0.1 TO 10.0.0.9]") == ast.Between(
        "source.ip", "ip", ip_key("10.0.0.1"), ip_key("10.0.0.9"), prefix="10.0.0.")
    assert p("destination.port:[* TO 10]") == ast.Between("destination.port", "num", None, 10)


def test_cidr() -> None:
    lo, hi = ip_block("10.0.0.0/8")
    assert p('source.ip:"10.0.0.0/8"') == ast.Between("source.ip", "ip", lo, hi, prefix="10.")
    assert p("source.ip:10.0.0.0\\/8") == ast.Between("source.ip", "ip", lo, hi, prefix="10.")  # escaped
    with pytest.raises(QuerySyntaxError, match="position 18"):  # unquoted: `/8` starts a regex, as in ES
        p("source.ip:10.0.0.0/8")
    lo, hi = ip_block("172.16.0.0/12")
    assert p('source.ip:"172.16.0.0/12"') == ast.Between("source.ip", "ip", lo, hi, prefix="172.")
    lo, hi = ip_block("2001:db8::/32")
    assert p('source.ip:"2001:db8::/32"') == ast.Between("source.ip", "ip", lo, hi)


def test_dates_are_spans() -> None:
    day = p("@timestamp:2024-05-01")
    assert day == ast.Between("@timestamp", "date", ms("2024-05-01T00:00:00+00:00"), ms("2024-05-02T00:00:00+00:00") - 1)
    rng = p("@timestamp:[2024-05-01 TO 2024-05-02]")  # lte takes the last ms of the day
    assert rng == ast.Between("@timestamp", "date", ms("2024-05-01T00:00:00+00:00"), ms("2024-05-03T00:00:00+00:00") - 1)
    excl = p("@timestamp:{2024-05-01 TO 2024-05-02}")  # gt: after the whole day; lt: before it starts
    assert excl == ast.Between("@timestamp", "date", ms("2024-05-02T00:00:00+00:00") - 1,
                               ms("2024-05-02T00:00:00+00:00"), False, False)
    assert p("@timestamp:>now-15m") == ast.Between("@timestamp", "date", ms("2024-05-01T12:15:15.250+00:00"), None, False, True)


def test_fuzzy_proximity_text_ranges() -> None:
    assert p("user.name:Root~") == ast.Fuzzy("user.name", "Root", 1)  # ES AUTO: 1 edit for 3-5 characters
    assert p("user.name:administrator~") == ast.Fuzzy("user.name", "administrator", 2)
    assert p("user.name:ro~") == ast.Fuzzy("user.name", "ro", 0)
    assert p("user.name:rxxt~2") == ast.Fuzzy("user.name", "rxxt", 2)
    assert p("Passwrod~1") == ast.Fuzzy("message", "passwrod", 1, text=True)
    assert p('"failed root"~2') == ast.TextPhrase("message", ("failed", "root"), 2)
    assert p('user.name:"root"~2') == ast.Equals("user.name", "root")
    assert p("message:[A TO b}") == ast.TextRange("message", "a", "b", True, False)


def test_edit_distance_and_slop() -> None:
    assert within_edits("orot", "root", 1)  # a transposition is one edit
    assert not within_edits("rxxt", "root", 1) and within_edits("rxxt", "root", 2)
    assert within_edits("paswod", "password", 2) and not within_edits("pswd", "password", 2)
    # "failed password for root": failed@0 root@3
    assert phrase_slop([[0], [3]], 2) and not phrase_slop([[0], [3]], 1)
    assert not phrase_slop([[3], [0]], 3) and phrase_slop([[3], [0]], 4)  # reversed order costs more
    assert not phrase_slop([[0], []], 5)


# -- errors with positions ----------------------------------------------------------------


@pytest.mark.parametrize(("query", "position"), [
    ("user.name:(root", 15),          # unclosed group: at the end
    ("user.name:root AND", 18),       # dangling operator: at the end
    ("a ) b", 2),                     # stray parenthesis
    ("source.ip:nope", 10),           # not an IP: at the value
    ("x:1 AND destination.port:abc", 25),
    ("x:1 AND source.ip:10.0.*", 18),  # wildcard on an ip field
    ("destination.port:22~", 17),     # fuzzy on a number
    ("process.name:/a(b/", 13),       # bad regular expression
    ("@timestamp:yesterday", 11),
])
def test_errors_have_positions(query: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        p(query)
    assert info.value.position == position, info.value
    assert info.value.query == query
    assert info.value.pointer().splitlines()[1] == " " * position + "^"


# -- values -------------------------------------------------------------------------------


def test_analyze_like_standard_analyser() -> None:
    assert analyze("Failed password for root from 10.0.0.5 port 22 ssh2") == (
        "failed", "password", "for", "root", "from", "10.0.0.5", "port", "22", "ssh2")
    assert analyze("user@example.com don't x-y /usr/bin") == ("user", "example.com", "don't", "x", "y", "usr", "bin")
    assert analyze("1,000.5 snake_case") == ("1,000.5", "snake_case")


def test_globs() -> None:
    assert glob_to_sqlite("a[b]*?") == "a[[]b]*?"
    assert glob_to_regex("a.b*?") == r"^a\.b.*.$"


def test_ip_keys_order_addresses() -> None:
    assert ip_key("10.0.0.9") < ip_key("10.0.0.10")  # type: ignore[operator]
    assert ip_key("::ffff:10.0.0.9") == ip_key("10.0.0.9")
    assert ip_key("nope") is None and ip_key(5) is None
    lo, hi = ip_block("2001:db8::/32")
    assert lo <= ip_key("2001:db8::5") <= hi  # type: ignore[operator]
    assert canonical_ip("2001:0db8:0:0::5") == "2001:db8::5"


def test_parse_date() -> None:
    span = parse_date("2024-05-01T10:00:00+02:00", NOW)
    assert (span.start, span.end) == (ms("2024-05-01T08:00:00+00:00"), ms("2024-05-01T08:00:00+00:00") + 999)
    assert parse_date("1714557600000", NOW).start == 1714557600000
    assert parse_date("now/d", NOW).start == ms("2024-05-01T00:00:00+00:00")
    assert parse_date("2024-05-31||+1M", NOW).start == ms("2024-06-30T00:00:00+00:00")
    with pytest.raises(ValueError):
        parse_date("2024-05-01||+1x", NOW)
