"""``dashboards.guard`` through the real server: Host allow-list, sign-in, CSRF, Origin, JSON only.

The browser versions of these attacks (another origin's form, ``no-cors`` fetch and JSON
POST; DNS rebinding; token sign-in) are in ``tests/test_dashboard_browser.py``; here every
refusal is checked request by request, and that the alert did not change.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_client import Client, serving
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards import analysts
from dashboards.hosts import HostAllowList, is_loopback, split_host
from dashboards.server import make_server, startup_message
from dashboards.sessions import Sessions
from eventstore import open_store
from eventstore.store import Store
from tests.dashboard_seed import seed


def _unchanged(store: Store, alert_id: str = "alert-0") -> bool:
    alert = store.get_alert(alert_id) or {}
    return alert.get("ztsoc.alert.status", "open") == "open" and not alert.get("ztsoc.alert.history")


def test_one_loopback_definition() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "localhost", "LOCALHOST.",
                 "::ffff:127.0.0.1"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::2", "localhost.evil.example", "evil.example", ""):
        assert not is_loopback(host), host
    assert [split_host(h) for h in ("a.example:80", "[::1]:8750", "127.0.0.1", "::1", "a b", "x/y", "h:99x")] == \
        ["a.example", "[::1]", "127.0.0.1", None, None, None, None]
    hosts = HostAllowList.build("0.0.0.0", ["soc.gov.example"])
    assert hosts.allows("soc.gov.example:8750") and hosts.allows("127.0.0.7:1") and hosts.allows("[::1]:2")
    assert not hosts.allows("evil.example:8750") and not hosts.allows(None) and not hosts.allows("")
    assert HostAllowList.build("10.1.2.3").allows("10.1.2.3:8750")


def test_foreign_host_is_refused_before_any_handler(sqlite_store: Store) -> None:
    seed(sqlite_store)
    with serving(sqlite_store, allow_hosts=("soc.gov.example",)) as served:
        for host in ("evil.example", f"evil.example:{served.port}", "127.0.0.1.evil.example", "", "a@127.0.0.1"):
            reply = Client(served.port).request("GET", "/api/alerts", headers={"Host": host})
            assert reply.status == 421, host
            assert reply.headers["x-content-type-options"] == "nosniff"
        rebinding = Client(served.port, host="evil.example")
        assert rebinding.get("/api/identity").status == 421
        assert rebinding.post("/api/alerts/alert-0/note", {"note": "x"}).status == 421
        for host in ("127.0.0.1", "localhost", "127.0.0.2", "soc.gov.example"):
            assert Client(served.port, host=host).get("/api/exercises").status == 200, host
    assert _unchanged(sqlite_store)


def test_writes_need_json_the_same_origin_and_the_session_csrf(sqlite_store: Store) -> None:
    seed(sqlite_store)
    with serving(sqlite_store, local_actor="maria") as served:
        c = Client(served.port)
        csrf = c.session()["csrf"]
        url = "/api/alerts/alert-0/close"
        body = {"reason": "false_positive"}
        own = f"http://127.0.0.1:{served.port}"
        refused = [
            c.request("POST", url, json.dumps(body).encode(), {"Content-Type": "text/plain", "X-CSRF-Token": csrf}),
            c.request("POST", url, b"reason=false_positive",
                      {"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf}),
            c.request("POST", url, b"--b\r\n", {"Content-Type": "multipart/form-data; boundary=b", "X-CSRF-Token": csrf}),
            c.request("POST", url, json.dumps(body).encode(), {"X-CSRF-Token": csrf}),  # no content type
            c.post(url, body),  # no CSRF token
            c.post(url, body, csrf="wrong"),
            c.post(url, body, csrf=csrf, headers={"Origin": "http://evil.example"}),
            c.post(url, body, csrf=csrf, headers={"Origin": "null"}),
            c.post(url, body, csrf=csrf, headers={"Sec-Fetch-Site": "cross-site"}),
            c.post(url, body, csrf=csrf, headers={"Sec-Fetch-Site": "same-site"}),
            Client(served.port).post(url, body, csrf=csrf),  # the token without its session
        ]
        assert [r.status for r in refused] == [403] * len(refused), [r.body for r in refused]
        assert _unchanged(sqlite_store)
        ok = c.post(url, body, csrf=csrf, headers={"Origin": own, "Sec-Fetch-Site": "same-origin",
                                                   "X-Analyst": "mallory"})
        assert ok.status == 200, ok.body
    history = (sqlite_store.get_alert("alert-0") or {})["ztsoc.alert.history"]
    assert [h["actor"] for h in history] == ["maria"]


def test_security_headers_on_every_answer(sqlite_store: Store) -> None:
    with serving(sqlite_store) as served:
        c = Client(served.port)
        for path in ("/", "/static/app.js", "/api/overview", "/healthz", "/api/nosuchview"):
            h = c.get(path).headers
            assert "frame-ancestors 'none'" in h["content-security-policy"], path
            assert "default-src 'self'" in h["content-security-policy"]
            assert h["referrer-policy"] == "no-referrer" and h["x-content-type-options"] == "nosniff"
            assert h["cross-origin-resource-policy"] == "same-origin" and h["cache-control"] == "no-store"
        assert c.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        assert c.get("/static/..%2fserver.py").status == 404


def test_token_mode_sign_in_session_and_revocation(sqlite_store: Store) -> None:
    seed(sqlite_store)
    token = analysts.add(sqlite_store, "ana", created_by="admin")
    stored = sqlite_store.list_state(analysts.KIND)
    assert len(stored) == 1 and token not in json.dumps(stored)  # only the hash is kept
    assert stored[0][0] == analysts.digest(token)
    with serving(sqlite_store, local_actor="root") as served:
        anon = Client(served.port)
        assert anon.get("/api/alerts").status == 401 and anon.get("/api/session").status == 401
        assert anon.get("/").status == 200 and anon.get("/static/style.css").status == 200  # no data in them
        assert anon.get("/healthz").status == 200
        assert anon.post("/api/alerts/alert-0/ack", {}).status == 401
        assert anon.get("/", token="ztd_wrong").status == 401

        ana = Client(served.port)
        signed = ana.get("/", token=token, since="7d")
        assert signed.status == 303 and signed.headers["location"] == "/?since=7d"  # the token left the URL
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert token not in cookie
        me = ana.session()
        assert me["analyst"] == "ana" and me["how"] == "session" and me["token_mode"] is True
        assert ana.post("/api/alerts/alert-0/ack", {}, headers={"X-Analyst": "mallory"}).status == 403  # no CSRF
        assert ana.post("/api/alerts/alert-0/ack", {}, csrf=me["csrf"], headers={"X-Analyst": "mallory"}).status == 200
        # a script with the token as a bearer: no cookie, no CSRF (another origin cannot send that header)
        script = Client(served.port)
        assert script.post("/api/alerts/alert-1/ack", {}, headers={"Authorization": f"Bearer {token}"}).status == 200
        assert script.post("/api/alerts/alert-2/ack", {}, headers={"Authorization": "Bearer nope"}).status == 401
        assert startup_message(served, "127.0.0.1").count("personal link") == 1

        analysts.add(sqlite_store, "ben", created_by="admin")  # still token mode after ana's revocation
        assert analysts.revoke(sqlite_store, "ana") == 1
        assert ana.get("/api/alerts").status == 401  # the session ended with its token
    actors = [(a, h["actor"]) for a in ("alert-0", "alert-1")
              for h in (sqlite_store.get_alert(a) or {})["ztsoc.alert.history"]]
    assert actors == [("alert-0", "ana"), ("alert-1", "ana")]


def test_beyond_loopback_needs_tokens(sqlite_store: Store) -> None:
    with pytest.raises(ValueError, match="beyond loopback"):
        make_server(sqlite_store, "0.0.0.0", 0)
    analysts.add(sqlite_store, "ana", created_by="admin")
    with serving(sqlite_store, host="0.0.0.0", allow_hosts=("soc.gov.example",)) as served:
        assert Client(served.port).get("/api/alerts").status == 401
        message = startup_message(served, "0.0.0.0")
        assert "personal link" in message and "soc.gov.example" in message


def test_local_mode_states_the_local_user(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SOC_LANG", "LANGUAGE", "LC_ALL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")  # the server names no language: the browser's (none sent) -> English
    with serving(sqlite_store, local_actor="lan") as served:
        client = Client(served.port)
        me = client.session()
        assert me == {"analyst": "lan", "how": "local", "csrf": me["csrf"], "token_mode": False, "language": "en"}
        assert "local user lan" in startup_message(served, "127.0.0.1")
        assert "(local user: loopback, no analyst tokens)" in client.get("/").body.decode()  # the page's messages
    page = (Path(__file__).resolve().parent.parent / "dashboards" / "static" / "app.js").read_text()
    assert "X-CSRF-Token" in page and "token=" not in page


def test_sessions_are_bounded() -> None:
    sessions = Sessions(lifetime=3600, limit=3)
    made = [sessions.start(f"a{i}", None) for i in range(5)]
    assert len(sessions) == 3 and sessions.get(made[0].id) is None and sessions.get(made[4].id) is not None
    expired = Sessions(lifetime=-1)
    assert expired.get(expired.start("a", None).id) is None


def test_token_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'soc.db'}"

    def soc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "soc_cli.main", "--store", url, "dashboard", "token", *args],
                              capture_output=True, text=True, timeout=120)

    added = soc("add", "ana")
    assert added.returncode == 0, added.stderr
    token = next(line for line in added.stdout.splitlines() if line.startswith("ztd_"))
    listed = soc("list", "--json")
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["ana"] and token not in listed.stdout
    assert soc("add", "bad name;rm").returncode == 2
    store = open_store(url)
    try:
        assert analysts.verify(store, token) is not None
    finally:
        store.close()
    assert soc("revoke", "ana").returncode == 0
    assert soc("revoke", "ana").returncode == 2
    assert json.loads(soc("list", "--json").stdout) == []


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=40), st.from_regex(r"\[?[0-9a-f:.]{0,20}\]?(:[0-9]{0,6})?", fullmatch=True),
                 st.builds(lambda a, b: f"{a}:{b}", st.sampled_from(["127.0.0.1", "localhost", "[::1]",
                                                                      "soc.gov.example", "evil.example"]),
                           st.text(max_size=6))))
def test_host_header_parsing_never_lets_a_foreign_name_in(header: str) -> None:
    """Whatever a client writes as Host: no exception, and an allowed one names loopback or an allowed name."""
    hosts = HostAllowList.build("127.0.0.1", ["soc.gov.example"])
    if hosts.allows(header):
        name = split_host(header)
        assert name is not None
        assert is_loopback(name) or name.rstrip(".") == "soc.gov.example", header
        assert "evil" not in header.lower()


def test_refusals_are_logged_without_control_characters(sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """The refusal log reaches the server's terminal: the client's path, Host and Origin are quoted with repr."""
    with serving(sqlite_store) as served:
        c = Client(served.port)
        c.request("GET", "/api/%1b]0;PWNED%07%9b31m", headers={"Host": "evil.example"})
        c.request("POST", "/api/alerts/%1b[2J/close", b"{}", {"Content-Type": "application/json",
                                                              "Origin": "http://e\x9b.example"})
    messages = [r.getMessage() for r in caplog.records if r.name == "ztsoc.dashboard"]
    assert len(messages) == 2, messages
    assert all(ch.isprintable() for m in messages for ch in m), messages
    assert "\\x1b]0;PWNED" in messages[0] and "\\x1b[2J" in messages[1]
