"""Shared by the dashboard's browser tests: a seeded dashboard, Debian's Chromium, a page that records errors.

Every page opens with an English browser (``Accept-Language: en-US``) and a server whose
environment names no language, so what a test sees does not depend on the machine's
``LANG``; a test that wants Vietnamese selects it, as an analyst would.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards.server import make_server
from eventstore.store import Store
from tests.dashboard_seed import seed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
LANGUAGE_VARS = ("SOC_LANG", "LANGUAGE", "LC_ALL", "LANG")


def neutral_language(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's environment names no language (``C``): the analyst's choice or the browser's decides."""
    for var in LANGUAGE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


@pytest.fixture
def dashboard(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Store]]:
    seed(sqlite_store)
    neutral_language(monkeypatch)
    served = make_server(sqlite_store, "127.0.0.1", 0).start_in_thread()
    try:
        yield f"http://127.0.0.1:{served.port}", sqlite_store
    finally:
        served.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: `make test` installs Debian's chromium (scripts/system-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # evil.example is the attacker's name; like a rebinding attacker's, it resolves to this machine
        yield pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                 args=[*FLAGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])


def new_page(browser: Any, width: int = 1400, height: int = 1000) -> Any:
    """A page in a fresh browser profile; its console errors and uncaught exceptions in ``console_errors``."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.console_errors = errors
    return pg


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    pg = new_page(browser)
    yield pg
    pg.context.close()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def ssh_incident(store: Store) -> dict[str, Any]:
    """The SSH rule's own samples, moved to the last hour, through the real detection runner."""
    from datetime import UTC, datetime, timedelta

    from detections.runner import load_compiled, run_detections
    from detections.sigma.loader import load_rules
    from detections.sigma.samples import expand
    from eventstore.timeutil import from_iso, to_iso

    events = expand(load_rules().find("ssh_bruteforce_then_success").meta.samples["match"], prefix="ui")
    shift = datetime.now(UTC) - timedelta(minutes=30) - max(from_iso(e["@timestamp"]) for e in events)
    for e in events:
        e["@timestamp"] = to_iso(from_iso(e["@timestamp"]) + shift)
    store.write_events(events)
    run_detections(store, since=datetime.now(UTC) - timedelta(hours=2), compiled=load_compiled())
    return next(a for a in store.scan("*", index="alerts") if a["rule.id"] == "ssh_bruteforce_then_success")
