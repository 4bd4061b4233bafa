"""The dashboard in a real headless Chromium (Debian's), driven by Playwright for Python.

The page must show the store's own numbers, a filter click must change the list,
closing an alert from the page must be what ``soc alerts show`` then sees, and no page
may log a console error. Screenshots go to ``test-artifacts/``.

Then the attacks of issue 15, in the same browser: a page on another origin (another
site, ``evil.example``, and another port of 127.0.0.1, which is the same *site*, so the
``SameSite=Strict`` cookie is sent and only the CSRF/Origin checks stand) tries an
auto-submitted ``text/plain`` form, a url-encoded form, a ``no-cors`` fetch and a JSON
fetch against an alert, after the analyst opened the dashboard; the alert must not change.
A rebinding page (``evil.example`` resolving to 127.0.0.1, on the dashboard's port) is
refused. Token mode signs in with ``?token=``, loses it from the URL, loads the styled
page with data and records the analyst's name in the history.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dashboards import analysts
from eventstore.store import Store
from tests.dashboard_browser import new_page, shot, ssh_incident

pytestmark = pytest.mark.browser


def test_pages_show_the_store_numbers(dashboard: tuple[str, Store], page: Any) -> None:
    url, store = dashboard
    page.goto(url + "/#overview")
    page.wait_for_selector("body[data-loaded=overview]")
    assert page.text_content("#open-alerts") == str(store.count("ztsoc.alert.status:open", index="alerts")) == "7"
    assert page.text_content("#level-medium") == "3"
    assert page.text_content("#level-critical") == "1"
    rows = page.locator("#collection tbody tr")
    assert rows.count() == 5
    shot(page, "overview")

    for name, selector, expected in (("network", "#odd-domains tbody", "exfil-cdn.example"),
                                     ("identity", "#top-denied tbody", "spiffe://gov.example/ns/portal/sa/web")):
        page.goto(f"{url}/#{name}")
        page.wait_for_selector(f"body[data-loaded={name}]")
        assert expected in (page.text_content(selector) or "")
        shot(page, name)
    assert page.console_errors == []


def test_filter_then_close_an_alert(dashboard: tuple[str, Store], page: Any) -> None:
    url, store = dashboard
    page.goto(url + "/#alerts")
    page.wait_for_selector("body[data-loaded=alerts]")
    page.wait_for_selector("#alert-rows tr")
    assert page.locator("#alert-rows tr").count() == 7
    page.select_option("#filter-level", "medium")
    from playwright.sync_api import expect

    expect(page.locator("#alert-rows tr")).to_have_count(3)
    assert page.text_content("#alert-total") == "3 alerts"

    first = page.locator("#alert-rows tr").first
    alert_id = first.get_attribute("data-id")
    first.click()
    page.wait_for_selector("#detail:not([hidden])")
    page.fill("#note", "confirmed with the network team")
    page.select_option("#close-reason", "false_positive")
    page.click("#btn-close")
    page.wait_for_selector("#action-result:has-text('close: done')")
    assert page.text_content("dd[data-field='ztsoc.alert.status']") == "closed"
    shot(page, "alert-closed")

    # What `soc alerts show` then says, run as the analyst would run it.
    assert alert_id is not None
    shown = subprocess.run([sys.executable, "-m", "soc_cli.main", "--store", store.url, "alerts", "show", alert_id,
                            "--json"], capture_output=True, text=True, check=True, timeout=120)
    detail = json.loads(shown.stdout)[0]
    assert detail["alert"]["ztsoc.alert.status"] == "closed"
    assert detail["alert"]["ztsoc.alert.close_reason"] == "false_positive"
    last = detail["history"][-1]
    assert last["action"] == "close" and last["note"] == "confirmed with the network team"
    assert page.console_errors == []


@pytest.mark.parametrize("width", [1400, 390])
def test_alert_detail_says_what_decides_it(dashboard: tuple[str, Store], browser: Any, width: int) -> None:
    """Issue 16: the rule's fields with readable labels (raw ECS name on hover), the success first,
    the guide filled with the alert's values, the entity's risk; at 390 px nothing runs off the page."""
    url, store = dashboard
    alert = ssh_incident(store)
    ip = str(alert["source.ip"])
    page = new_page(browser, width, 900)
    context, errors = page.context, page.console_errors
    try:
        page.goto(url + "/#alerts")
        page.wait_for_selector("body[data-loaded=alerts]")
        page.fill("#filter-q", "rule.id:ssh_bruteforce_then_success")
        page.click("#alert-filters button[type=submit]")
        from playwright.sync_api import expect

        expect(page.locator("#alert-rows tr")).to_have_count(1)
        page.locator("#alert-rows tr").first.click()
        page.wait_for_selector("#guide p")
        first = page.locator("#evidence tbody tr").first
        assert first.get_attribute("data-outcome") == "success"
        looked_at = first.locator("td").last
        assert f"source address: {ip}" in (looked_at.text_content() or "")
        assert looked_at.locator("[title='source.ip']").count() == 1
        assert page.locator("dt[title='ztsoc.alert.entity.value']").text_content() == "entity"
        guide = page.text_content("#guide") or ""
        assert ip in guide and "<ip>" not in guide
        assert "unresolved alert(s)" in (page.text_content("dd[data-field=risk]") or "")
        evidence_rows = page.locator("#timeline tr.evidence")
        assert evidence_rows.count() == page.locator("#evidence tbody tr").count()
        assert any("ssh_login success" in t for t in evidence_rows.all_text_contents())
        if width < 500:
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            wide = page.evaluate("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
                                 " > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className)")
            assert overflow <= 0, f"the page is {overflow} px wider than a {width} px screen: {wide}"
        shot(page, f"alert-detail-{width}px")
        assert errors == []
    finally:
        context.close()


ATTACK = """<!doctype html><html><body><iframe name="sink"></iframe>
<form id="plain" method="POST" enctype="text/plain" target="sink" action="{target}">
<input name='{{"reason": "false_positive", "x": "' value='"}}'></form>
<form id="urlenc" method="POST" target="sink" action="{target}"><input name="reason" value="false_positive"></form>
<script>
const url = "{target}";
const body = JSON.stringify({{reason: "false_positive", note: "closed by another origin"}});
const pause = ms => new Promise(r => setTimeout(r, ms));
(async () => {{
  const out = [];
  document.getElementById("plain").submit(); await pause(400);
  document.getElementById("urlenc").submit(); await pause(400);
  try {{ await fetch(url, {{method: "POST", mode: "no-cors", credentials: "include",
                           headers: {{"Content-Type": "text/plain"}}, body}}); out.push("no-cors sent"); }}
  catch (e) {{ out.push("no-cors failed"); }}
  try {{ const r = await fetch(url, {{method: "POST", credentials: "include",
                                     headers: {{"Content-Type": "application/json"}}, body}}); out.push("json " + r.status); }}
  catch (e) {{ out.push("json blocked"); }}
  try {{ const r = await fetch("{origin}/api/session", {{credentials: "include"}}); out.push("read " + r.status); }}
  catch (e) {{ out.push("read blocked"); }}
  document.body.dataset.done = out.join("|");
}})();
</script></body></html>"""


def _attacker(html: str) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _untouched(store: Store, alert_id: str) -> None:
    alert = store.get_alert(alert_id) or {}
    assert alert.get("ztsoc.alert.status") == "open" and not alert.get("ztsoc.alert.history"), alert


@pytest.mark.parametrize("attacker_host", ["evil.example", "127.0.0.1"])
def test_another_origin_cannot_change_an_alert(dashboard: tuple[str, Store], page: Any, attacker_host: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    url, store = dashboard
    page.goto(url + "/#alerts")  # the analyst has the dashboard open: the session cookie is set
    page.wait_for_selector("body[data-loaded=alerts]")
    assert any(c["name"] == "ztsoc_session" for c in page.context.cookies())
    server, port = _attacker(ATTACK.format(target=f"{url}/api/alerts/alert-0/close", origin=url))
    try:
        evil = page.context.new_page()
        evil.goto(f"http://{attacker_host}:{port}/")
        evil.wait_for_selector("body[data-done]", timeout=20_000)
        done = evil.get_attribute("body", "data-done")
        assert done is not None and "json 200" not in done and "read 200" not in done, done
        evil.close()
    finally:
        server.shutdown()
        server.server_close()
    _untouched(store, "alert-0")
    # the two forms and the no-cors fetch reached the server and were refused there (the JSON fetch's
    # preflight, OPTIONS, too); nothing relied on the browser alone
    refusals = [r.getMessage() for r in caplog.records if r.name == "ztsoc.dashboard"]
    posts = [m for m in refusals if m.startswith("refused POST '/api/alerts/alert-0/close'")]
    assert len(posts) >= 3 and all("application/json only" in m for m in posts), refusals
    assert any(m.startswith("refused OPTIONS '/api/alerts/alert-0/close'") for m in refusals), refusals


def test_rebinding_page_is_refused(dashboard: tuple[str, Store], page: Any) -> None:
    url, store = dashboard
    port = url.rsplit(":", 1)[1]
    for path in ("/", "/api/alerts", "/api/identity"):
        response = page.goto(f"http://evil.example:{port}{path}")
        assert response is not None and response.status == 421, path
        assert "does not answer to that Host" in (page.text_content("body") or "")
    _untouched(store, "alert-0")


def test_token_mode_signs_in_and_records_the_analyst(dashboard: tuple[str, Store], page: Any) -> None:
    url, store = dashboard
    token = analysts.add(store, "ana", created_by="admin")
    page.goto(f"{url}/?token={token}")
    assert page.url == url + "/"  # redirected: the token is no longer in the URL (or the history)
    page.wait_for_selector("body[data-loaded=overview]")
    cookie = next(c for c in page.context.cookies() if c["name"] == "ztsoc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 23, 32)"  # style.css
    assert page.text_content("#open-alerts") == "7"
    assert page.text_content("#analyst") == "signed in as ana"
    shot(page, "token-mode")

    page.goto(url + "/#alerts")
    page.wait_for_selector("#alert-rows tr")
    row = page.locator("#alert-rows tr").first
    alert_id = row.get_attribute("data-id")
    row.click()
    page.wait_for_selector("#detail:not([hidden])")
    page.fill("#note", "seen by ana")
    page.click("#btn-ack")
    page.wait_for_selector("#action-result:has-text('ack: done')")
    assert "ana" in (page.text_content("#history") or "")
    assert alert_id is not None
    last = (store.get_alert(alert_id) or {})["ztsoc.alert.history"][-1]
    assert (last["actor"], last["action"]) == ("ana", "ack")
    assert page.console_errors == []

    other = page.context.browser.new_context()  # another browser profile, no session: no data
    fresh = other.new_page()
    fresh.goto(url + "/")
    fresh.wait_for_selector("#analyst:has-text('not signed in')")
    other.close()


LOGIN_CSRF = """<!doctype html><html><body><script>location = "{target}";</script></body></html>"""


def test_another_site_cannot_sign_the_analyst_in_as_someone_else(dashboard: tuple[str, Store], page: Any) -> None:
    """Audit finding 3 (login CSRF): a page on evil.example sends the browser to ``/?token=<mallory's>``; the
    dashboard refuses (Chromium says ``Sec-Fetch-Site: cross-site``) and alice stays alice."""
    url, store = dashboard
    alice, mallory = (analysts.add(store, name, created_by="admin") for name in ("alice", "mallory"))
    page.goto(f"{url}/?token={alice}")
    page.wait_for_selector("#analyst:has-text('signed in as alice')")
    server, port = _attacker(LOGIN_CSRF.format(target=f"{url}/?token={mallory}"))
    try:
        evil = page.context.new_page()
        evil.goto(f"http://evil.example:{port}/login-csrf")
        evil.wait_for_url(lambda u: u.startswith(url + "/"))
        evil.wait_for_load_state()
        landed = evil.text_content("body") or ""
        evil.close()
    finally:
        server.shutdown()
        server.server_close()
    page.goto(url + "/")
    page.wait_for_selector("body[data-loaded=overview]")
    assert page.text_content("#analyst") == "signed in as alice"
    assert "another site" in landed, landed
    # pasted into the address bar by the analyst (Sec-Fetch-Site: none), the same link signs in
    page.goto(f"{url}/?token={mallory}")
    page.wait_for_selector("#analyst:has-text('signed in as mallory')")
    assert page.console_errors == []


def test_sign_out_ends_the_session(dashboard: tuple[str, Store], page: Any) -> None:
    """Audit finding 4: the page's sign-out button ends the server-side session and drops the cookie."""
    from tests.dashboard_client import Client

    url, store = dashboard
    token = analysts.add(store, "alice", created_by="admin")
    page.goto(f"{url}/?token={token}")
    page.wait_for_selector("body[data-loaded=overview]")
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "ztsoc_session")
    assert page.text_content("#sign-out") == "sign out"
    page.click("#sign-out")
    page.wait_for_selector("#analyst:has-text('not signed in')")
    assert not page.is_visible("#sign-out")
    assert [c for c in page.context.cookies() if c["name"] == "ztsoc_session"] == []
    old = Client(int(url.rsplit(":", 1)[1]), cookies={"ztsoc_session": cookie})
    assert old.get("/api/session").status == 401  # ended on the server, not only forgotten by the browser
    assert [e for e in page.console_errors if "401" not in e] == []  # the reloaded page's /api/session: 401


def test_local_mode_has_no_sign_out_button(dashboard: tuple[str, Store], page: Any) -> None:
    url, _store = dashboard
    page.goto(url + "/")
    page.wait_for_selector("body[data-loaded=overview]")
    assert not page.is_visible("#sign-out") and "acting as" in (page.text_content("#analyst") or "")


def test_values_named_like_object_properties_are_shown_as_they_are(dashboard: tuple[str, Store], page: Any) -> None:
    """Audit finding 7: the page's lookup tables are own-property lookups; a rule id ``constructor``, an outcome
    ``__proto__`` and a dataset ``toString`` are shown as written, not as Object's inherited members."""
    url, store = dashboard
    from eventstore.timeutil import to_iso, utcnow

    now = to_iso(utcnow())
    store.write_events([{"@timestamp": now, "event.id": "proto-ev", "event.kind": "event", "event.dataset": "toString",
                         "event.outcome": "__proto__", "source.ip": "10.9.9.9"}])
    store.put_alerts([{"@timestamp": now, "event.id": "proto-alert", "event.kind": "alert",
                       "event.dataset": "ztsoc.alert", "rule.id": "constructor", "rule.name": "Proto rule",
                       "ztsoc.alert.level": "high", "ztsoc.alert.entity.type": "ip",
                       "ztsoc.alert.entity.value": "10.9.9.9", "ztsoc.alert.evidence": ["proto-ev"],
                       "ztsoc.alert.close_reason": "hasOwnProperty"}])
    page.goto(url + "/#alerts")
    page.wait_for_selector("#alert-rows tr[data-id=proto-alert]")
    row = page.locator("#alert-rows tr[data-id=proto-alert]")
    assert row.locator("td").nth(2).text_content() == "Proto rule"
    row.click()
    page.wait_for_selector("#detail:not([hidden])")
    page.wait_for_selector("#evidence tbody tr")
    assert page.text_content("#detail-title") == "Proto rule"
    cells = page.locator("#evidence tbody tr").first.locator("td")
    assert cells.nth(1).text_content() == "toString"
    assert cells.nth(2).text_content() == "__proto__"
    assert page.text_content("dd[data-field='ztsoc.alert.close_reason']") == "hasOwnProperty"
    page.goto(url + "/#constructor")  # a page name from the address bar: the overview, not Object()
    page.wait_for_selector("body[data-loaded=overview]")
    assert "toString" in (page.text_content("#collection") or "")
    assert page.console_errors == []
