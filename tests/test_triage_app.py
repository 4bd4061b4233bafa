"""``soc triage`` driven by Textual's own Pilot against a real, seeded SQLite store."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

from alertseed import T0, alert, auth
from rich.console import Console
from textual.widgets import DataTable, Static

from eventstore import Store
from soc_cli.triage_app import CloseScreen, DetailScreen, PromptScreen, TimelineScreen, TriageApp, age


def _seed(store: Store) -> None:
    store.write_events([auth("ev1", T0 - timedelta(minutes=2), "root", "10.0.0.5"),
                        auth("ev2", T0 - timedelta(minutes=1), "root", "10.0.0.5", outcome="success")])
    store.put_alerts([
        alert("crit", level="critical", evidence=["ev1", "ev2"]),
        alert("high", level="high", rule="port_scan", entity="10.0.0.8"),
        alert("low", level="low", rule="policy_denials", entity="spiffe://prov.gov/ns/a/sa/b",
              entity_type="service"),
    ])


def _detail_text(app: TriageApp) -> str:
    """The detail pane's content as plain text, rendered by Rich the way the pane draws it."""
    out = Console(width=150, file=io.StringIO(), record=True)
    out.print(app.query_one("#detail", Static).content)
    return out.export_text()


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_queue_detail_and_single_keys(sqlite_store: Store) -> None:
    _seed(sqlite_store)

    async def scenario() -> None:
        app = TriageApp(sqlite_store, actor="maria")
        async with app.run_test(size=(180, 50)) as pilot:
            table = app.query_one("#queue", DataTable)
            assert table.row_count == 3
            assert [a["event.id"] for a in app.alerts] == ["crit", "high", "low"]
            assert "SSH brute force then success" in _detail_text(app)
            assert "Evidence" in _detail_text(app)

            await pilot.press("a")  # ack the critical one
            await pilot.pause()
            assert (sqlite_store.get_alert("crit") or {})["ztsoc.alert.status"] == "acknowledged"
            assert "ack: crit is acknowledged" in str(app.query_one("#status", Static).content)

            await pilot.press("a")  # again: refused, with the lifecycle's own message
            await pilot.pause()
            assert "cannot ack alert crit: it is acknowledged" in str(app.query_one("#status", Static).content)

            await pilot.press("s")
            assert isinstance(app.screen, PromptScreen)
            await pilot.press(*"omar", "enter")
            await pilot.pause()
            assert (sqlite_store.get_alert("crit") or {})["ztsoc.alert.assignee"] == "omar"

            await pilot.press("n")
            await pilot.press(*"called the user", "enter")
            await pilot.pause()

            await pilot.press("down")  # the port scan
            await pilot.pause()
            assert "Port scan" in _detail_text(app)
            await pilot.press("e")
            await pilot.pause()
            assert (sqlite_store.get_alert("high") or {})["ztsoc.alert.status"] == "escalated"

            await pilot.press("c")
            assert isinstance(app.screen, CloseScreen)
            await pilot.press("2")  # false_positive
            await pilot.press(*"lab scanner", "enter")
            await pilot.pause()
            closed = sqlite_store.get_alert("high") or {}
            assert closed["ztsoc.alert.status"] == "closed"
            assert closed["ztsoc.alert.close_reason"] == "false_positive"
            assert closed["ztsoc.alert.history"][-1]["note"] == "lab scanner"
            assert [a["event.id"] for a in app.alerts] == ["crit", "low"]  # closed alerts leave the queue

            await pilot.press("c", "escape")  # cancelled: nothing changes
            await pilot.pause()
            assert (sqlite_store.get_alert("crit") or {})["ztsoc.alert.status"] == "acknowledged"

            history = (sqlite_store.get_alert("crit") or {})["ztsoc.alert.history"]
            assert [(h["action"], h["actor"]) for h in history] == [("ack", "maria"), ("assign", "maria"),
                                                                    ("note", "maria")]
            assert history[2]["note"] == "called the user"

    run(scenario())


def test_timeline_screen_and_back(sqlite_store: Store) -> None:
    _seed(sqlite_store)

    async def scenario() -> None:
        app = TriageApp(sqlite_store, actor="maria")
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("t")
            await pilot.pause()
            assert isinstance(app.screen, TimelineScreen)
            rows = app.screen.query_one("#timeline", DataTable)
            assert rows.row_count == 3  # two auth events and the alert itself
            assert [r["event.id"] for r in app.screen.timeline.rows()] == ["ev1", "ev2", "crit"]
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, TimelineScreen)
            await pilot.press("q")
        assert app.return_code == 0

    run(scenario())


def test_filter_key(sqlite_store: Store) -> None:
    _seed(sqlite_store)

    async def scenario() -> None:
        app = TriageApp(sqlite_store, actor="maria")
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("slash", *"rule.id:port_scan", "enter")
            await pilot.pause()
            assert [a["event.id"] for a in app.alerts] == ["high"]
            await pilot.press("slash", *"rule.id:(", "enter")  # does not parse: refused, filter kept
            await pilot.pause()
            assert [a["event.id"] for a in app.alerts] == ["high"]
            await pilot.press("slash", "enter")  # empty: cleared
            await pilot.pause()
            assert len(app.alerts) == 3

    run(scenario())


def test_empty_queue(sqlite_store: Store) -> None:
    async def scenario() -> None:
        app = TriageApp(sqlite_store, actor="maria")
        async with app.run_test() as pilot:
            assert "The queue is empty" in _detail_text(app)
            await pilot.press("a", "c")
            await pilot.pause()
            assert not isinstance(app.screen, CloseScreen)  # nothing selected: no dialog, no crash
            assert app.query_one("#queue", DataTable).row_count == 0

    run(scenario())


def test_columns_status_views_reopen_and_full_screen(sqlite_store: Store) -> None:
    """Assignee and age stay visible, closed alerts are one key away, and so is reopening them."""
    from detections import lifecycle

    _seed(sqlite_store)
    lifecycle.assign(sqlite_store, "high", "lan.pham", actor="maria")
    lifecycle.close(sqlite_store, "low", "false_positive", actor="maria")

    async def scenario() -> None:
        app = TriageApp(sqlite_store, actor="maria")
        async with app.run_test(size=(160, 45)) as pilot:
            table = app.query_one("#queue", DataTable)
            assert [str(c.label) for c in table.columns.values()] == ["level", "status", "age", "assignee", "entity",
                                                                      "rule"]
            assert [a["event.id"] for a in app.alerts] == ["crit", "high"]  # open ones
            row = table.get_row("high")
            assert "lan.pham" in str(row[3]) and str(row[2]).endswith(("s", "m", "h", "d"))
            await pilot.press("f")  # closed
            await pilot.pause()
            assert [a["event.id"] for a in app.alerts] == ["low"]
            assert "1 of 1 alerts (closed" in str(app.query_one("#status", Static).content)
            await pilot.press("o")  # reopen it from here
            await pilot.pause()
            assert (sqlite_store.get_alert("low") or {})["ztsoc.alert.status"] == "open"
            await pilot.press("f")  # all
            await pilot.pause()
            assert {a["event.id"] for a in app.alerts} == {"crit", "high", "low"}
            await pilot.press("enter")  # the selected alert full screen
            await pilot.pause()
            assert isinstance(app.screen, DetailScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, DetailScreen)

    run(scenario())
    assert age("2026-01-01T00:00:00Z", now=1767225600 + 3 * 3600 + 5) == "3h"
