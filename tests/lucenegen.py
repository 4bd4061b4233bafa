"""Seeded documents and random Lucene query strings for the two-store query differential.

``documents`` makes events whose values sit where the two query translators could read
them differently: text with punctuation, apostrophes, IPs and newlines in ``message``;
keywords with case, spaces, Unicode, Lucene's special characters and one longer than the
keyword ``ignore_above``; IPv4 and IPv6 addresses; numbers, booleans, arrays; dates from
2018 to now; ``dns.answers`` as a list of objects (a ``flattened`` field on Elasticsearch).

``queries`` draws query strings over every part of the syntax: terms, phrases, wildcards,
regular expressions (Lucene's optional operators too), fuzzy and proximity, ranges (with
``*``, partial dates, date math), CIDR blocks quoted and not, ``_exists_`` and ``field:*``,
boolean operators in every spelling (``AND OR NOT && || ! + -``), groups and field groups,
and plain mistakes (unbalanced parentheses, a value the field cannot hold).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

_WORDS = ["failed", "password", "root", "accepted", "ssh2", "don't", "session", "opened", "for", "user",
          "Invalid", "from", "port", "CONNECTION", "closed", "by", "sudo", "émile", "10.0.0.5", "example.com",
          "über", "a-b", "x_y", "o'brien", "2024-01-01", "v1.2.3", "TCP/IP", "C:\\Windows"]
_USERS = ["alice", "Bob", "bob", "carol smith", "x*y", "dave?", "émile", "a\\b", "r00t", "O'Brien", "a:b",
          "(paren)", "UPPER", "tab\there", "new\nline", "ünïcode", ""]
_HOSTS = ["web-01", "web-02", "db.corp.local", "DC01.corp.local", "mail.example.com"]
_IPS = ["10.0.0.5", "10.1.200.7", "192.168.1.20", "8.8.8.8", "172.16.5.4", "10.255.255.255", "fe80::1",
        "2001:db8::7", "::1", "0.0.0.0"]
_ANSWERS = [("1.2.3.4", "A", "x.example.com"), ("2001:db8::1", "AAAA", "x.example.com"),
            ("mail.example.com", "CNAME", "Mail.Example.com"), ("10.0.0.5", "A", "intranet")]
_CODES = ["4624", "4625", "4688", "1", "0"]
_TAGS = ["prod", "test", "Prod", "pci", "dmz zone"]


def documents(seed: int, n: int = 240, now: datetime | None = None) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    docs: list[dict[str, Any]] = []
    for i in range(n):
        if i % 3 == 0:  # recent: now-7d/d and friends have something to find
            when = now - timedelta(seconds=rng.randrange(3600, 20 * 86400))
        else:
            when = datetime(2018, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 9 * 365 * 86400))
        words = rng.sample(_WORDS, rng.randrange(2, 8))
        sep = rng.choice([" ", " ", ", ", "\n", ": "])
        doc: dict[str, Any] = {
            "event.id": f"q{i:04d}",
            "@timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "event.dataset": rng.choice(["system.auth", "network.flow", "network.dns"]),
            "message": sep.join(rng.choice([w, w.upper(), w.capitalize()]) for w in words),
        }
        if rng.random() < 0.85:
            doc["user.name"] = rng.choice(_USERS)
        if rng.random() < 0.8:
            doc["host.name"] = rng.choice(_HOSTS)
        if rng.random() < 0.85:
            doc["source.ip"] = rng.choice(_IPS)
        if rng.random() < 0.3:
            doc["destination.ip"] = [rng.choice(_IPS), rng.choice(_IPS)]
        if rng.random() < 0.8:
            doc["destination.port"] = rng.choice([22, 53, 80, 443, 3389, 8080, 65535, 0])
        if rng.random() < 0.6:
            doc["event.risk_score"] = rng.choice([0.0, 0.5, 1.25, 47.0, 99.9, -3.5])
        if rng.random() < 0.7:
            doc["event.code"] = rng.choice(_CODES)
        if rng.random() < 0.5:
            doc["tags"] = rng.sample(_TAGS, rng.randrange(1, 3))
        if rng.random() < 0.5:
            doc["ztsoc.policy.authenticated"] = rng.random() < 0.5
        if rng.random() < 0.4:
            doc["event.start"] = (when - timedelta(minutes=rng.randrange(0, 90))).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if doc["event.dataset"] == "network.dns" and rng.random() < 0.8:
            doc["dns.question.name"] = rng.choice(_HOSTS)
            doc["dns.answers"] = [{"data": d, "type": t, "name": nm, "ttl": rng.choice([60, 300])}
                                  for d, t, nm in rng.sample(_ANSWERS, rng.randrange(1, 3))]
        if rng.random() < 0.3:
            cmd = rng.choice(["cmd.exe /c whoami", "powershell -enc AAAA", "line one\nline two", "C:\\Temp\\a b.exe"])
            if rng.random() < 0.15:
                cmd += " " + "Z" * 9000  # longer than ignore_above: kept, but not searchable
            doc["winlog.event_data.CommandLine"] = cmd
        docs.append(doc)
    return docs


_KEYWORD_FIELDS = ["user.name", "host.name", "event.code", "tags", "event.dataset", "winlog.event_data.CommandLine",
                   "dns.question.name"]
_SPECIAL = set('+-=&|><!(){}[]^"~*?:\\/ ')


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Gen:
    def __init__(self, rng: random.Random, docs: list[dict[str, Any]]) -> None:
        self.rng = rng
        self.docs = docs

    def pick(self, name: str) -> Any:
        values = [d[name] for d in self.docs if name in d]
        value = self.rng.choice(values) if values else "none"
        return self.rng.choice(value) if isinstance(value, list) else value

    def keyword(self) -> str:
        r = self.rng
        name = r.choice(_KEYWORD_FIELDS)
        value = str(self.pick(name))
        if r.random() < 0.1:
            value = value.upper()
        kind = r.random()
        if kind < 0.3:
            return f"{name}:{_quote(value)}"
        if kind < 0.5:
            return f"{name}:{_escape(value) or _quote('')}"
        if kind < 0.7:  # wildcard
            cut = r.randrange(0, max(1, len(value)))
            pattern = r.choice([f"{_escape(value[:cut])}*", f"*{_escape(value[cut:])}", f"*{_escape(value[cut:cut + 3])}*",
                                f"{_escape(value[:cut])}?{_escape(value[cut + 1:])}"])
            return f"{name}:{pattern}"
        if kind < 0.85:  # regex
            core = "".join("\\" + c if not c.isalnum() else c for c in value[:6])
            pattern = r.choice([f"{core}.*", f".*{core[-4:]}", "[a-z]+", "[A-Z].*", f"{core}(.|\n)*", ".*e.*",
                                "a.b", f"{core}.*&.*o.*", f"~({core}.*)", "<1-100>", f"{core}@", "#", f"({core}|zz).*"])
            return f"{name}:/{pattern}/"
        if kind < 0.92:
            return f"{name}:{_escape(value[:5])}~{r.choice(['', '1', '2'])}"
        return f"{name}:[{_escape(value[:2]) or 'a'} TO {r.choice(['*', 'm', 'zz'])}]"

    def text(self) -> str:
        r = self.rng
        word = r.choice(_WORDS)
        kind = r.random()
        field = r.choice(["message:", "message:", ""])
        if kind < 0.3:
            return f"{field}{_escape(word)}"
        if kind < 0.45:
            return f"{field}{_quote(word + ' ' + r.choice(_WORDS))}"
        if kind < 0.6:
            return f"{field}{_quote(word + ' ' + r.choice(_WORDS))}~{r.randrange(1, 4)}"
        if kind < 0.75:
            return f"{field}{_escape(word[:3])}*" if len(word) > 3 else f"{field}*{_escape(word)}*"
        if kind < 0.85:
            return f"{field}{_escape(word)}~"
        if kind < 0.92:
            return f"{field}/{r.choice(['fail.*', 'ro+t', '.*ss.*', 'ssh[0-9]', 'o.b.*'])}/"
        return f"{field}({_escape(word)} {_escape(r.choice(_WORDS))})"

    def ip(self) -> str:
        r = self.rng
        name = r.choice(["source.ip", "destination.ip"])
        kind = r.random()
        ip = r.choice(_IPS)
        if kind < 0.3:
            return f"{name}:{_escape(ip)}"
        if kind < 0.45:
            return f"{name}:{_quote(ip)}"
        if kind < 0.7:
            block = r.choice(["10.0.0.0/8", "10.1.0.0/16", "192.168.1.0/24", "fe80::/10", "0.0.0.0/0", "8.8.8.8/32"])
            return f"{name}:{_quote(block)}" if r.random() < 0.5 else f"{name}:{block}" if r.random() < 0.5 else \
                f"{name}:{_escape(block)}"
        if kind < 0.85:
            return f"{name}:[{_escape(r.choice(_IPS[:6]))} TO {_escape(r.choice(_IPS[:6]))}]"
        return f"{name}:{r.choice(['10.0.0.*', 'not-an-ip', '300.1.1.1', '10.0.0.5~'])}"

    def number(self) -> str:
        r = self.rng
        name = r.choice(["destination.port", "event.risk_score"])
        v = r.choice(["22", "443", "0", "1.25", "-3.5", "47", "99.9", "abc" if r.random() < 0.3 else "53", "1e2", "8080"])
        kind = r.random()
        if kind < 0.3:
            return f"{name}:{_escape(v)}"
        if kind < 0.6:
            lo, hi = r.choice(["*", "0", "22", "1.3"]), r.choice(["*", "443", "100", "50"])
            return f"{name}:{r.choice('[{')}{lo} TO {hi}{r.choice(']}')}"
        if kind < 0.85:
            return f"{name}:{r.choice(['>', '>=', '<', '<='])}{_escape(v)}"
        return f"{name}:{r.choice(['4*', '/4.*/', '44~'])}"

    def date(self) -> str:
        r = self.rng
        name = r.choice(["@timestamp", "@timestamp", "event.start"])
        year = r.randrange(2017, 2028)
        value = r.choice([f"{year}", f"{year}-{r.randrange(1, 13):02d}", f"{year}-03-{r.randrange(1, 29):02d}",
                          f"{year}-06-01T12:00:00", "now-7d/d", "now/d", "now-1M", "now-30d/M", "now-1y/y",
                          f"{year}-01-01||+1M/M"])
        if r.random() < 0.06:
            value = r.choice(["2019-13", "yesterday", "now-7x"])
        kind = r.random()
        if kind < 0.25:
            return f"{name}:{_quote(value)}"
        if kind < 0.32:
            return f"{name}:{_escape(value)}"
        if kind < 0.35:
            return f"{name}:{value}"  # unescaped: `now-7d/d` starts a regex at `/`, `-` is fine
        if kind < 0.75:
            other = r.choice(["*", f"{year + 1}", "now", f"{year}-0{r.randrange(1, 10)}", "now-1d/d"])
            lo, hi = (value, other) if r.random() < 0.5 else ("*", value)
            return f"{name}:{r.choice('[{')}{_escape(lo) if lo != '*' else lo} TO " \
                   f"{_escape(hi) if hi != '*' else hi}{r.choice(']}')}"
        return f"{name}:{r.choice(['>', '>=', '<', '<='])}{_escape(value)}"

    def other(self) -> str:
        r = self.rng
        return r.choice([
            f"_exists_:{r.choice(['user.name', 'dns.answers', 'dns.answers.data', 'tags', 'nope', 'destination.ip'])}",
            f"{r.choice(['user.name', 'dns.answers.type', 'event.start', 'nope'])}:*",
            f"ztsoc.policy.authenticated:{r.choice(['true', 'false', 'TRUE', 'yes'])}",
            f"dns.answers.{r.choice(['data', 'type', 'name', 'ttl'])}:{_escape(str(r.choice(['A', 'CNAME', 'x.example.com', '1.2.3.4', '300', 'a', 'mail*'])))}",
            f"dns.answers.{r.choice(['data', 'name'])}:{_quote(r.choice(['x.example.com', 'Mail.Example.com', '10.0.0.5']))}",
            "*", "*:*", "nope:x",
        ])

    def atom(self) -> str:
        return self.rng.choice([self.keyword, self.keyword, self.text, self.ip, self.number, self.date, self.other])()

    def query(self, depth: int = 0) -> str:
        r = self.rng
        if depth > 2 or r.random() < 0.45:
            return self.prefix() + self.atom()
        parts = [self.query(depth + 1) for _ in range(r.randrange(2, 4))]
        out = parts[0]
        for p in parts[1:]:
            joiner = r.choice([" AND ", " OR ", " && ", " || ", " ", " AND NOT ", " OR NOT ", " NOT "])
            if joiner.endswith("NOT ") and r.random() < 0.9:  # two modifiers in a row: refused, now and then
                p = p.removeprefix("NOT NOT ").removeprefix("NOT ").lstrip("!+-")
            out += joiner + p
        return f"({out})" if r.random() < 0.5 else out

    def prefix(self) -> str:
        r = self.rng.random()
        if r < 0.6:
            return ""
        return self.rng.choice(["NOT ", "!", "-", "+", "NOT ", "!", "-", "+", "NOT NOT " if r > 0.97 else "NOT "])

    def broken(self) -> str:
        r = self.rng
        return r.choice(["(user.name:alice", "user.name:alice)", "user.name:[a TO", "AND", "user.name:",
                         "message:\"open", "/unterminated", "user.name:alice AND", "a:b:c", "user.name:{a TO b]]",
                         "destination.port:[1 TO abc]", "source.ip:[10.0.0.1 TO zzz]", "@timestamp:[2019 TO nope]"])


def queries(seed: int, docs: list[dict[str, Any]], n: int) -> list[str]:
    rng = random.Random(seed)
    gen = _Gen(rng, docs)
    return [gen.broken() if rng.random() < 0.03 else gen.query() for _ in range(n)]
