"""``soc store init|status``: where the data lives and how much of it there is."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Table

from locales import _, format_number, format_timestamp
from soc_cli.context import StoreOption, use_store
from soc_cli.output import console, emit_doc, esc, safe


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{format_number(round(size))} {unit}" if unit == "B" else f"{format_number(round(size, 1))} {unit}"
        size /= 1024
    return f"{format_number(round(size, 1))} GiB"


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The event store: create it, see what is in it.", no_args_is_help=True)
    app.add_typer(group, name="store")

    @group.command("init")
    def init(store: str = StoreOption) -> None:
        """Create the tables or index templates (safe to run again)."""
        s = use_store(store)
        s.init()
        ready = _("store ready:")
        console.print(f"{esc(ready)} [bold]{esc(s.backend)}[/] {esc(s.url)}")

    @group.command("status")
    def status(store: str = StoreOption, as_json: bool = typer.Option(False, "--json")) -> None:
        """Backend, size, and events per dataset."""
        st = use_store(store).status()
        if as_json:
            emit_doc(asdict(st))
            return
        size = _("size {size}").format(size=_size(st.size_bytes))
        console.print(f"[bold]{esc(st.backend)}[/] {esc(st.url)}  {esc(size)}")
        console.print(safe(_("events {events}  alerts {alerts}  from {first} to {last}").format(
            events=format_number(st.events), alerts=format_number(st.alerts), first=format_timestamp(st.first_event, as_stored=True) or "-",
            last=format_timestamp(st.last_event, as_stored=True) or "-")))
        tbl = Table("event.dataset", _("events"), header_style="bold")
        for name, n in sorted(st.per_dataset.items(), key=lambda kv: (-kv[1], kv[0])):
            tbl.add_row(safe(name), format_number(n))
        console.print(tbl)
