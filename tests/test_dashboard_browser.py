"""The dashboard in a real headless Chromium (Debian's), driven by Playwright for Python.

The page must show the store's own numbers, a filter click must change the list,
closing an alert from the page must be what ``soc alerts show`` then sees, and no page
may log a console error. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards.server import make_server
from eventstore.store import Store
from tests.dashboard_seed import seed

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture
def dashboard(sqlite_store: Store) -> Iterator[tuple[str, Store]]:
    seed(sqlite_store)
    server, _ = make_server(sqlite_store, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sqlite_store
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def page() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: `make test` installs Debian's chromium (scripts/system-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.console_errors = errors
        yield pg
        browser.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_pages_show_the_store_numbers(dashboard: tuple[str, Store], page: Any) -> None:
    url, store = dashboard
    page.goto(url + "/#overview")
    page.wait_for_selector("body[data-loaded=overview]")
    assert page.text_content("#open-alerts") == str(store.count("ztsoc.alert.status:open", index="alerts")) == "7"
    assert page.text_content("#level-medium") == "3"
    assert page.text_content("#level-critical") == "1"
    rows = page.locator("#collection tbody tr")
    assert rows.count() == 5
    _shot(page, "overview")

    for name, selector, expected in (("network", "#odd-domains tbody", "exfil-cdn.example"),
                                     ("identity", "#top-denied tbody", "spiffe://gov.example/ns/portal/sa/web")):
        page.goto(f"{url}/#{name}")
        page.wait_for_selector(f"body[data-loaded={name}]")
        assert expected in (page.text_content(selector) or "")
        _shot(page, name)
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
    _shot(page, "alert-closed")

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
