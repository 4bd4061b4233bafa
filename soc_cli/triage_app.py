"""``soc triage``: the alert queue as an interactive terminal app (Textual).

The list on the left is ``detections.queue.list_queue`` (most severe, then newest); the
pane on the right is exactly what ``soc alerts show`` prints; every key calls the same
lifecycle function as the CLI, so a refused transition is refused here too, with the same
message, and every change lands in the alert's history under the analyst's name.

Keys: a ack, s assign, e escalate, c close (reason, then an optional note), n note,
o reopen, t timeline, Enter the alert full screen, f status filter (open, closed, all: closed
alerts are where reopen is), / filter (a query string; empty clears it), r refresh, q quit.
The queue's columns put the rule's title last, so level, status, age, assignee and entity stay
visible however long titles are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, OptionList, Static

from detections import lifecycle
from detections.lifecycle import TransitionError
from detections.queue import AlertFilter, list_queue
from eventstore.errors import StoreError
from eventstore.store import Doc, Store
from locales import N_, _, format_number, format_timestamp
from soc_cli.errors import raised_text
from soc_cli.labels import label, rule_title, short_level
from soc_cli.safe_text import safe, visible

LEVEL_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan",
               "informational": "dim"}


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text (an assignee, a note); Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", _("cancel"))]
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 70; height: auto; border: thick $accent; padding: 1 2; background: $surface; }
    """

    def __init__(self, title: str, placeholder: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(placeholder=self.placeholder, id="prompt")

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()

    @on(Input.Submitted, "#prompt")
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class CloseScreen(ModalScreen[tuple[str, str | None] | None]):
    """Pick a close reason (arrows + Enter, or its number), then an optional note (Enter)."""

    BINDINGS = [Binding("escape", "cancel", _("cancel"))]
    DEFAULT_CSS = """
    CloseScreen { align: center middle; }
    CloseScreen > Vertical { width: 70; height: auto; border: thick $error; padding: 1 2; background: $surface; }
    CloseScreen OptionList { height: auto; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(_("Close with reason:"))
            yield OptionList(*[f"{i}. {label(r)}" for i, r in enumerate(lifecycle.CLOSE_REASONS, 1)], id="reasons")
            yield Input(placeholder=_("note (optional), Enter to close"), id="note", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#reasons", OptionList).focus()

    def on_key(self, event: Any) -> None:
        if self.reason is None and event.key.isdigit() and 1 <= int(event.key) <= len(lifecycle.CLOSE_REASONS):
            event.stop()
            self._pick(int(event.key) - 1)

    @on(OptionList.OptionSelected, "#reasons")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._pick(event.option_index)

    def _pick(self, index: int) -> None:
        self.reason = lifecycle.CLOSE_REASONS[index]
        self.query_one(Label).update(Text.assemble(_("Close as") + " ", (self.reason, "bold"), "; " + _("note:")))
        note = self.query_one("#note", Input)
        note.disabled = False
        note.focus()

    @on(Input.Submitted, "#note")
    def _submit(self, event: Input.Submitted) -> None:
        if self.reason is not None:
            self.dismiss((self.reason, event.value.strip() or None))

    def action_cancel(self) -> None:
        self.dismiss(None)


class TimelineScreen(Screen[None]):
    """The alert's entity in time order (``soc alerts timeline``); Escape goes back."""

    BINDINGS = [Binding("escape,t,q", "app.pop_screen", _("back"))]

    def __init__(self, timeline: Any) -> None:
        super().__init__()
        self.timeline = timeline

    def compose(self) -> ComposeResult:
        yield Header()
        tl = self.timeline
        counts = _("{entries} entries, {events} events").format(entries=len(tl.entries), events=tl.total_events)
        yield Label(safe(f"{tl.entity} ({'/'.join(tl.kinds)}): {counts}"),
                    id="timeline-title")
        yield DataTable(id="timeline", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#timeline", DataTable)
        table.add_columns(_("time"), _("dataset"), "", _("summary"))
        for row in self.timeline.rows():
            style = "bold" if row["evidence"] else ("red" if row["event.dataset"] == "alert" else "")
            table.add_row(safe(format_timestamp(row["@timestamp"], ms=True)), safe(row["event.dataset"]),
                          "*" if row["evidence"] else "", safe(row["summary"], style))
        table.focus()


class DetailScreen(Screen[None]):
    """One alert full screen (what ``soc alerts show`` prints, at the terminal's width); Escape goes back."""

    BINDINGS = [Binding("escape,enter,q", "app.pop_screen", _("back"))]

    def __init__(self, renderable: Any) -> None:
        super().__init__()
        self.renderable = renderable

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="full-detail-scroll"):
            yield Static(self.renderable, id="full-detail")
        yield Footer()


#: the actions' names as the status line and notices say them
ACTIONS: dict[str, str] = {"ack": N_("ack"), "escalate": N_("escalate"), "reopen": N_("reopen"),
                           "assign": N_("assign"), "note": N_("note"), "close": N_("close")}

#: the status filter ``f`` cycles through: (label, statuses)
STATUS_VIEWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("open", tuple(lifecycle.OPEN_STATUSES)), ("closed", ("closed",)),
    ("all", (*lifecycle.OPEN_STATUSES, "closed")),
)


def age(timestamp: Any, now: float | None = None) -> str:
    """How long ago, in the largest unit that fits (``45s``, ``12m``, ``3h``, ``5d``)."""
    import time

    from eventstore.timeutil import from_iso

    try:
        seconds = (now if now is not None else time.time()) - from_iso(str(timestamp)).timestamp()
    except (ValueError, TypeError):
        return ""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


class TriageApp(App[None]):
    """The queue, a detail pane and single-key actions, over any ``Store``."""

    TITLE = "ztsoc triage"
    CSS = """
    #queue { width: 40%; }
    #detail-scroll { width: 60%; border-left: solid $accent; padding: 0 1; }
    #status { height: 1; padding: 0 1; background: $boost; }
    """
    BINDINGS = [
        Binding("a", "ack", _("ack")),
        Binding("s", "assign", _("assign")),
        Binding("e", "escalate", _("escalate")),
        Binding("c", "close_alert", _("close")),
        Binding("n", "note", _("note")),
        Binding("o", "reopen", _("reopen")),
        Binding("t", "timeline", _("timeline")),
        Binding("enter", "full_detail", _("full screen")),
        Binding("f", "status_view", _("status")),
        Binding("r", "refresh", _("refresh")),
        Binding("slash", "filter", _("filter")),
        Binding("q", "quit", _("quit")),
    ]

    def __init__(self, store: Store, *, flt: AlertFilter | None = None, limit: int = 500,
                 actor: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.flt = flt or AlertFilter()
        self.limit = limit
        self.actor = actor or lifecycle.analyst_name()
        self.alerts: list[Doc] = []
        self.total = 0
        self.view = next((i for i, (_, sts) in enumerate(STATUS_VIEWS) if set(sts) == set(self.flt.statuses)), 0)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield DataTable(id="queue", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail-scroll"):
                yield Static("", id="detail")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#queue", DataTable)
        table.add_columns(_("level"), _("status"), _("age"), _("assignee"), _("entity"), _("rule"))
        self.load()
        table.focus()

    # -- data ---------------------------------------------------------------------------------
    def load(self, keep: str | None = None) -> None:
        """(Re)read the queue; keep the cursor on alert ``keep`` when it is still listed."""
        page = list_queue(self.store, self.flt, limit=self.limit)
        self.alerts, self.total = page.alerts, page.total
        table = self.query_one("#queue", DataTable)
        table.clear()
        for a in self.alerts:
            level = str(a.get("ztsoc.alert.level") or "")
            table.add_row(safe(short_level(level), LEVEL_STYLE.get(level, "")), safe(label(a.get("ztsoc.alert.status") or "open")),
                          safe(age(a.get("ztsoc.alert.last_seen") or a.get("@timestamp"))),
                          safe(a.get("ztsoc.alert.assignee") or "-"), safe(a.get("ztsoc.alert.entity.value")),
                          safe(rule_title(a)), key=str(a["event.id"]))
        self.set_status(safe(_("{shown} of {total} alerts").format(shown=len(self.alerts), total=self.total)
                             + f" ({label(STATUS_VIEWS[self.view][0])}; f: "
                             + " / ".join(label(name) for name, _statuses in STATUS_VIEWS) + ")"))
        if keep is not None:
            for i, a in enumerate(self.alerts):
                if a["event.id"] == keep:
                    table.move_cursor(row=i)
                    break
        self.show_detail()

    def current(self) -> Doc | None:
        table = self.query_one("#queue", DataTable)
        if not self.alerts or table.cursor_row is None or not 0 <= table.cursor_row < len(self.alerts):
            return None
        return self.alerts[table.cursor_row]

    def show_detail(self) -> None:
        from soc_cli.commands.alerts import alert_details, details_renderable

        detail = self.query_one("#detail", Static)
        alert = self.current()
        if alert is None:
            detail.update(safe(_("The queue is empty.") if not self.alerts else ""))
            return
        full = self.store.get_alert(str(alert["event.id"])) or alert
        detail.update(details_renderable(alert_details(self.store, full)))

    def set_status(self, text: Text) -> None:
        self.query_one("#status", Static).update(safe(text))

    @on(DataTable.RowHighlighted, "#queue")
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    @on(DataTable.RowSelected, "#queue")
    def _selected(self, _event: DataTable.RowSelected) -> None:
        self.action_full_detail()  # Enter on a row: the alert at the terminal's full width

    # -- actions ------------------------------------------------------------------------------
    def _do(self, name: str, fn: Callable[[str], Doc]) -> None:
        alert = self.current()
        if alert is None:
            self.notify(_("no alert selected"), severity="warning")
            return
        alert_id = str(alert["event.id"])
        try:
            updated = fn(alert_id)
        except (TransitionError, StoreError) as exc:
            refused = _("{action} refused").format(action=_(ACTIONS.get(name, name)))
            self.notify(visible(raised_text(exc)), title=visible(refused), severity="error", markup=False)
            self.set_status(safe(f"{refused}: {raised_text(exc)}"))
            return
        self.load(keep=alert_id)
        self.set_status(safe(_("{action}: {id} is {status}  ({shown} of {total} alerts)").format(
            action=_(ACTIONS.get(name, name)), id=alert_id, status=label(updated.get("ztsoc.alert.status")),
            shown=format_number(len(self.alerts)), total=format_number(self.total))))

    def action_ack(self) -> None:
        self._do("ack", lambda i: lifecycle.ack(self.store, i, actor=self.actor))

    def action_escalate(self) -> None:
        self._do("escalate", lambda i: lifecycle.escalate(self.store, i, actor=self.actor))

    def action_reopen(self) -> None:
        self._do("reopen", lambda i: lifecycle.reopen(self.store, i, actor=self.actor))

    def action_assign(self) -> None:
        def done(user: str | None) -> None:
            if user:
                self._do("assign", lambda i: lifecycle.assign(self.store, i, user, actor=self.actor))

        if self.current() is not None:
            self.push_screen(PromptScreen(_("Assign to:"), _("user name")), done)

    def action_note(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self._do("note", lambda i: lifecycle.add_note(self.store, i, text, actor=self.actor))

        if self.current() is not None:
            self.push_screen(PromptScreen(_("Note:"), _("what you found or did")), done)

    def action_close_alert(self) -> None:
        def done(result: tuple[str, str | None] | None) -> None:
            if result:
                reason, note = result
                self._do("close", lambda i: lifecycle.close(self.store, i, reason, actor=self.actor, note=note))

        if self.current() is not None:
            self.push_screen(CloseScreen(), done)

    def action_timeline(self) -> None:
        from detections.timeline import alert_timeline

        alert = self.current()
        if alert is None:
            return
        full = self.store.get_alert(str(alert["event.id"])) or alert
        try:
            tl = alert_timeline(self.store, full)
        except (ValueError, StoreError) as exc:
            self.notify(visible(raised_text(exc)), title=_("timeline"), severity="error", markup=False)
            return
        self.push_screen(TimelineScreen(tl))

    def action_filter(self) -> None:
        def done(text: str | None) -> None:
            previous = self.flt.query
            self.flt.query = text
            try:
                self.load()
            except StoreError as exc:  # a query that does not parse: say so, keep the old filter
                self.flt.query = previous
                self.notify(visible(raised_text(exc)), title=_("filter"), severity="error", markup=False)
                self.load()

        self.push_screen(PromptScreen(_("Filter (query string, empty for none):"), self.flt.query or "rule.id:..."),
                         done)

    def action_status_view(self) -> None:
        """Cycle the queue between open, closed (where reopen is) and all alerts."""
        self.view = (self.view + 1) % len(STATUS_VIEWS)
        self.flt.statuses = list(STATUS_VIEWS[self.view][1])
        self.load()

    def action_full_detail(self) -> None:
        from soc_cli.commands.alerts import alert_details, details_renderable

        alert = self.current()
        if alert is None:
            return
        full = self.store.get_alert(str(alert["event.id"])) or alert
        self.push_screen(DetailScreen(details_renderable(alert_details(self.store, full))))

    def action_refresh(self) -> None:
        alert = self.current()
        self.load(keep=str(alert["event.id"]) if alert else None)
