"""The web-security audit of the dashboard (findings 1-6), each reproduced against a real server.

Every test here failed before its fix: a hostile ``event.dataset`` broke the overview for
everyone; cookie-less requests from another site evicted the local analyst's session; another
site's navigation to ``/?token=`` replaced the analyst's sign-in; there was no sign-out; one
malformed cookie of another local app hid the session; and odd inputs gave 500s without the
security headers. The browser versions (Chromium) are in ``tests/test_dashboard_browser.py``.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.routing import Route

from dashboards import analysts
from dashboards.server import make_server
from dashboards.sessions import COOKIE, Sessions
from eventstore import open_store
from eventstore.store import Store
from eventstore.timeutil import to_iso, utcnow
from tests.dashboard_client import Client, Reply, serving
from tests.dashboard_seed import seed

#: what a browser sends for an ``<img>`` another site put on its page (no cookie: SameSite=Strict)
CROSS_SITE_IMAGE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
#: a top-level navigation another site started (``location = ...``, a link)
CROSS_SITE_NAVIGATION = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
                         "Sec-Fetch-User": "?1"}
#: the analyst typed or pasted the link
TYPED_NAVIGATION = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
                    "Sec-Fetch-User": "?1"}
SAME_ORIGIN_FETCH = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}


def _secure(reply: Reply) -> bool:
    h = reply.headers
    return ("frame-ancestors 'none'" in h.get("content-security-policy", "") and h.get("x-frame-options") == "DENY"
            and h.get("x-content-type-options") == "nosniff" and h.get("cache-control") == "no-store")


def _two_analysts(store: Store) -> tuple[str, str]:
    """The seeded store with two analysts' tokens: alice's and mallory's."""
    seed(store)
    return analysts.add(store, "alice", created_by="admin"), analysts.add(store, "mallory", created_by="admin")


def _sign_in(client: Client, token: str, headers: dict[str, str] = TYPED_NAVIGATION) -> int:
    return client.request("GET", f"/?token={token}", headers=headers).status


def _note(client: Client, csrf: str | None, alert: str = "alert-1", text: str = "seen") -> Reply:
    return client.post(f"/api/alerts/{alert}/note", {"note": text}, csrf=csrf, headers=SAME_ORIGIN_FETCH)


# -- finding 1: a stored value never becomes query text ---------------------------------------------------------
DATASETS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30)


@settings(max_examples=25, deadline=None)
@given(dataset=DATASETS, minutes=st.lists(st.integers(1, 600), min_size=1, max_size=3))
@example(dataset='webapp"', minutes=[5])
@example(dataset='x" OR event.dataset:"network.flow', minutes=[300])
@example(dataset="a\\", minutes=[1, 2])
@example(dataset="*", minutes=[7])
def test_a_hostile_dataset_leaves_overview_and_identity_answering(dataset: str, minutes: list[int]) -> None:
    """Any ``event.dataset`` (quotes, backslashes, query syntax): both pages answer 200, and each
    dataset's "last event seen" is its own newest event, not another dataset's."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'soc.db'}")
        try:
            seed(store)
            now = utcnow().replace(microsecond=0)
            stamps = [to_iso(now - timedelta(minutes=m)) for m in minutes]
            store.write_events([{"@timestamp": t, "event.id": f"hostile-{uuid.uuid4().hex}", "event.kind": "event",
                                 "event.dataset": dataset, "message": "hi"} for t in stamps])
            newest_flow = to_iso(now - timedelta(minutes=5))  # dashboard_seed: the first flow
            with serving(store) as served:
                client = Client(served.port)
                overview = client.get("/api/overview", since="24h")
                identity = client.get("/api/identity", since="24h")
        finally:
            store.close()
    assert overview.status == 200, overview.body
    assert identity.status == 200, identity.body
    last = {r["dataset"]: r["last_event"] for r in overview.json()["collection"]}
    assert last[dataset] == max(stamps)
    if dataset != "network.flow":
        assert last["network.flow"] == newest_flow


def test_alert_filters_are_quoted_terms(sqlite_store: Store) -> None:
    """The alert page's filters are values, not query text: a quote in one is a value that matches nothing."""
    seed(sqlite_store)
    with serving(sqlite_store) as served:
        client = Client(served.port)
        assert client.get("/api/alerts", level="medium").json()["total"] == 3
        for hostile in ('medium" OR ztsoc.alert.level:"high', "medium\\", '"'):
            reply = client.get("/api/alerts", level=hostile)
            assert reply.status == 200 and reply.json()["total"] == 0, (hostile, reply.body)


# -- finding 2: another site cannot evict the analyst's session -------------------------------------------------
def test_cross_site_requests_cannot_end_the_local_session(sqlite_store: Store) -> None:
    seed(sqlite_store)
    with serving(sqlite_store, local_actor="maria") as served:
        analyst = Client(served.port)
        assert analyst.request("GET", "/", headers=TYPED_NAVIGATION).status == 200
        csrf = analyst.request("GET", "/api/session", headers=SAME_ORIGIN_FETCH).json()["csrf"]
        assert _note(analyst, csrf, text="before").status == 200
        for i in range(1100):  # what the audit's page did: new Image().src = ".../api/session?N"
            hit = Client(served.port).request("GET", f"/api/session?{i}", headers=CROSS_SITE_IMAGE)
            assert "set-cookie" not in hit.headers  # no cookie is minted for another site's request
        for i in range(300):  # and even cookie-less requests that look like the page's own keep nothing
            Client(served.port).request("GET", f"/?{i}", headers=TYPED_NAVIGATION)
        assert len(served.dashboard.sessions) == 0  # the local user's sessions are stateless
        after = _note(analyst, csrf, text="after")
        assert after.status == 200, after.body
        # the CSRF token still belongs to its own cookie: another cookie's page cannot use it
        other = Client(served.port)
        other.request("GET", "/", headers=TYPED_NAVIGATION)
        assert _note(other, csrf).status == 403
        assert _note(Client(served.port, cookies={COOKIE: "x" * 43}), csrf).status == 403
    notes = [h.get("note") for h in (sqlite_store.get_alert("alert-1") or {})["ztsoc.alert.history"]]
    assert notes == ["before", "after"]


def test_one_analyst_signing_in_again_and_again_evicts_nobody_else(sqlite_store: Store) -> None:
    alice, mallory = _two_analysts(sqlite_store)
    with serving(sqlite_store) as served:
        a = Client(served.port)
        assert _sign_in(a, alice) == 303
        csrf = a.session()["csrf"]
        for _ in range(1100):
            assert _sign_in(Client(served.port), mallory) == 303
        assert len(served.dashboard.sessions) <= 1 + served.dashboard.sessions.per_analyst
        assert _note(a, csrf).status == 200


def test_sessions_evict_the_least_recently_used() -> None:
    sessions = Sessions(lifetime=3600, limit=3)
    kept = sessions.start("a0", "h")
    for i in range(1, 6):
        assert sessions.get(kept.id) == kept  # used between the others: never the oldest
        sessions.start(f"a{i}", "h")
    assert len(sessions) == 3 and sessions.get(kept.id) == kept
    own = Sessions(lifetime=3600, limit=100, per_analyst=2)
    first, *_rest = (own.start("m", "h") for _ in range(3))
    other = own.start("x", "h")
    assert len(own) == 3 and own.get(first.id) is None and own.get(other.id) == other
    assert Sessions().local("not an id", "maria") is None


# -- finding 3: login CSRF ----------------------------------------------------------------------------------------
def test_sign_in_started_by_another_site_is_refused(sqlite_store: Store) -> None:
    alice, mallory = _two_analysts(sqlite_store)
    with serving(sqlite_store) as served:
        a = Client(served.port)
        assert _sign_in(a, alice) == 303
        alices = a.cookies[COOKIE]
        for site in ("cross-site", "same-site"):  # same-site: another port of 127.0.0.1
            reply = a.request("GET", f"/?token={mallory}", headers={**CROSS_SITE_NAVIGATION, "Sec-Fetch-Site": site})
            assert reply.status == 403 and "another site" in reply.json()["error"], reply.body
            assert "set-cookie" not in reply.headers and _secure(reply)
        assert a.cookies[COOKIE] == alices and a.session()["analyst"] == "alice"
        # the analyst's own navigation (typed, same-origin link, a script without Fetch Metadata) signs in,
        # and the browser's previous session ends on the server
        for headers in (TYPED_NAVIGATION, {**TYPED_NAVIGATION, "Sec-Fetch-Site": "same-origin"}, {}):
            before = a.cookies[COOKIE]
            assert _sign_in(a, mallory, headers) == 303
            assert a.cookies[COOKIE] != before and a.session()["analyst"] == "mallory"
            assert Client(served.port, cookies={COOKIE: before}).get("/api/session").status == 401


# -- finding 4: sign-out --------------------------------------------------------------------------------------------
def test_logout_ends_the_session_and_expires_the_cookie(sqlite_store: Store) -> None:
    seed(sqlite_store)
    token = analysts.add(sqlite_store, "alice", created_by="admin")
    with serving(sqlite_store) as served:
        a = Client(served.port)
        a.request("GET", f"/?token={token}", headers=TYPED_NAVIGATION)
        cookie, csrf = a.cookies[COOKIE], a.session()["csrf"]
        assert a.post("/api/logout", {}, headers=SAME_ORIGIN_FETCH).status == 403  # CSRF-checked
        assert a.post("/api/logout", {}, csrf=csrf, headers={"Sec-Fetch-Site": "cross-site"}).status == 403
        assert a.get("/api/session").status == 200
        out = a.post("/api/logout", {}, csrf=csrf, headers=SAME_ORIGIN_FETCH)
        assert out.status == 200 and out.json() == {"analyst": "alice", "signed_out": True}
        set_cookie = out.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE}=;") and "Max-Age=0" in set_cookie and "HttpOnly" in set_cookie
        assert Client(served.port, cookies={COOKIE: cookie}).get("/api/session").status == 401  # ended server-side
        bearer = {"Authorization": f"Bearer {token}"}
        assert Client(served.port).request("GET", "/api/logout", headers=bearer).status in (404, 405)  # POST only
        listed = Client(served.port).request("GET", "/api", headers=bearer).json()
        assert {"methods": ["POST"], "path": "/api/logout"} in listed


def test_local_logout_expires_the_cookie(sqlite_store: Store) -> None:
    with serving(sqlite_store, local_actor="maria") as served:
        c = Client(served.port)
        csrf = c.session()["csrf"]
        out = c.post("/api/logout", {}, csrf=csrf, headers=SAME_ORIGIN_FETCH)
        assert out.status == 200 and "Max-Age=0" in out.headers["set-cookie"]


# -- finding 5: another app's malformed cookie ----------------------------------------------------------------------
@pytest.mark.parametrize("junk", ['junk=a"b', 'junk={"a":1}', "junk=a b", "jq=[1,2]", "a=\\x; b", "=; ;;", 'x="'])
@pytest.mark.parametrize("mode", ["local", "token"])
def test_a_malformed_cookie_before_ours_hides_nothing(sqlite_store: Store, junk: str, mode: str) -> None:
    seed(sqlite_store)
    token = analysts.add(sqlite_store, "alice", created_by="admin") if mode == "token" else None
    with serving(sqlite_store) as served:
        c = Client(served.port)
        if token:
            c.request("GET", f"/?token={token}", headers=TYPED_NAVIGATION)
        csrf = c.session()["csrf"]
        sent = {"Cookie": f"{junk}; {COOKIE}={c.cookies[COOKIE]}"}
        assert c.request("GET", "/api/session", headers=sent).json()["csrf"] == csrf
        reply = c.post("/api/alerts/alert-1/note", {"note": "x"}, csrf=csrf, headers={**sent, **SAME_ORIGIN_FETCH})
        assert reply.status == 200, reply.body


# -- finding 6: odd inputs are 400s that name the field; every answer has the security headers ---------------------
def test_odd_inputs_are_400s_naming_the_field(sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    seed(sqlite_store)
    with serving(sqlite_store, local_actor="maria") as served:
        c = Client(served.port)
        csrf = c.session()["csrf"]
        gets = [("/api/overview", {"since": "100000000d"}, "since"), ("/api/identity", {"since": "99999999999w"}, "since"),
                ("/api/network", {"since": "0001-01-01T00:00:00-23:59"}, "since"),
                ("/api/alerts", {"since": "40000d"}, "since"), ("/api/alerts", {"since": "yesterday"}, "since"),
                ("/api/alerts", {"q": "(" * 3000 + "a" + ")" * 3000}, "q"),
                ("/api/alerts", {"q": "rule.name:" + "(" * 3000 + "a" + ")" * 3000}, "q"),
                ("/api/alerts", {"limit": "lots"}, "limit"), ("/api/alerts", {"limit": "9" * 5000}, "limit"),
                ("/api/alerts", {"limit": "-1"}, "limit")]
        for path, params, field in gets:
            reply = c.get(path, **params)
            assert reply.status == 400 and reply.json()["error"].startswith(field + ":"), (path, reply.body[:200])
            assert _secure(reply)
        assert c.get("/api/overview", since="3000d").status == 200
        url = "/api/alerts/alert-3/"
        for action, body, field in [("note", {"note": {"a": 1}}, "note"), ("note", {"note": ["x"]}, "note"),
                                    ("note", {"note": 5}, "note"), ("assign", {"assignee": {"x": 1}}, "assignee"),
                                    ("close", {"reason": ["benign"]}, "reason"), ("close", {"reason": True}, "reason")]:
            reply = c.post(url + action, body, csrf=csrf, headers=SAME_ORIGIN_FETCH)
            assert reply.status == 400 and reply.json()["error"].startswith(field + ":"), (body, reply.body)
            assert _secure(reply)
        deep = c.post(url + "note", ("[" * 30000 + "]" * 30000).encode(), csrf=csrf, headers=SAME_ORIGIN_FETCH)
        assert deep.status == 400 and "nested" in deep.json()["error"] and _secure(deep)
        deep_object = c.post(url + "note", ('{"a":' * 10000 + "1" + "}" * 10000).encode(), csrf=csrf)
        assert deep_object.status == 400 and _secure(deep_object)
        vi = c.request("GET", "/api/overview?since=100000000d", headers={"X-Display-Language": "vi"})
        assert vi.status == 400 and "message" in vi.json()
    alert = sqlite_store.get_alert("alert-3") or {}
    assert not alert.get("ztsoc.alert.history")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def test_an_unexpected_error_is_a_500_with_the_security_headers(sqlite_store: Store,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Whatever a handler did not expect: the guard answers 500 itself, with every security header, and
    logs one line (the exception quoted with repr), no traceback."""
    def boom(request: Request) -> None:
        raise RuntimeError("no handler expected this \x1b[2J" + request.url.path)

    served = make_server(sqlite_store, "127.0.0.1", 0, local_actor="maria")
    served.dashboard.app.router.routes.insert(0, Route("/api/boom", boom, methods=["GET", "POST"]))
    served.start_in_thread()
    try:
        c = Client(served.port)
        csrf = c.session()["csrf"]
        replies = [c.get("/api/boom"), c.request("GET", "/api/boom", headers={"X-Display-Language": "vi"}),
                   c.post("/api/boom", {}, csrf=csrf, headers=SAME_ORIGIN_FETCH)]
        assert c.get("/healthz").status == 200  # the server goes on
    finally:
        served.stop()
    for reply in replies:
        assert reply.status == 500 and _secure(reply), reply.headers
        assert reply.headers["content-type"] == "application/json" and "internal error" in reply.json()["error"]
        assert "RuntimeError" not in reply.body.decode()  # nothing of the exception reaches the client
    assert "message" in replies[1].json()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["ztsoc.dashboard"] * 3, [(r.name, r.getMessage()) for r in errors]
    assert all(r.exc_info is None and "\\x1b[2J" in r.getMessage() and "\x1b" not in r.getMessage() for r in errors)

