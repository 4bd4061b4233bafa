"""``soc dashboard serve|export-kibana|import-kibana``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from locales import _
from soc_cli.context import StoreOption, use_store
from soc_cli.output import console, emit, err_console, safe, write_generated


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The local web dashboard and the Kibana saved objects.", no_args_is_help=True)
    app.add_typer(group, name="dashboard")

    @group.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="bind address (beyond loopback, analysts need tokens)"),
        port: int = typer.Option(8750, "--port"),
        allow_host: list[str] = typer.Option(None, "--allow-host", help="a Host name the dashboard answers to "
                                                                         "besides loopback (repeatable)"),
        store: str = StoreOption,
    ) -> None:
        """Serve the dashboard and its JSON API (GET /api lists the routes)."""
        from dashboards.server import make_server, startup_message

        served = make_server(use_store(store), host, port, allow_hosts=tuple(allow_host or ()))
        served.start_in_thread()  # the bound port is known (--port 0) before the one line is printed
        console.print(safe(startup_message(served, host)), soft_wrap=True)
        try:
            while served.thread is not None and served.thread.is_alive():
                served.thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            served.stop()

    token = typer.Typer(help="Analysts' personal dashboard tokens (stored hashed in the store).",
                        no_args_is_help=True)
    group.add_typer(token, name="token")

    @token.command("add")
    def token_add(name: str = typer.Argument(..., help="the analyst's name, recorded in alert history"),
                  store: str = StoreOption) -> None:
        """A new personal token for NAME, shown once: the analyst opens http://HOST:PORT/?token=TOKEN."""
        from dashboards import analysts
        from soc_cli.context import analyst

        secret = analysts.add(use_store(store), name, created_by=analyst())
        console.print(safe(_("token for {name} (shown once; the store keeps only its hash):").format(name=name)))
        console.print(safe(secret))
        err_console.print(safe(_("sign in: {url}  (the page then drops it from the URL)").format(
            url=f"http://HOST:PORT/?token={secret}")), soft_wrap=True)

    @token.command("list")
    def token_list(as_json: bool = typer.Option(False, "--json"), store: str = StoreOption) -> None:
        """Analysts with tokens: name, token id (a hash prefix), created, by whom."""
        from dataclasses import asdict

        from dashboards import analysts

        rows = [asdict(t) for t in analysts.listed(use_store(store))]
        emit(rows, ["name", "id", "created", "created_by"], as_json=as_json, ndjson=False,
             title=_("{n} dashboard token(s)").format(n=len(rows)))

    @token.command("revoke")
    def token_revoke(name: str = typer.Argument(..., help="analyst name (all their tokens) or a token id"),
                     store: str = StoreOption) -> None:
        """Revoke tokens: their sessions end at the next request."""
        from dashboards import analysts

        gone = analysts.revoke(use_store(store), name)
        if not gone:
            raise ValueError(_("no dashboard token for {name} (soc dashboard token list)").format(name=repr(name)))
        console.print(safe(_("revoked {n} token(s) of {name}").format(n=gone, name=name)))

    @group.command("export-kibana")
    def export_kibana(
        out: Path = typer.Option(None, "--out", "-o", help="file to write (default: standard output)"),
        prefix: str = typer.Option("ztsoc", "--prefix", help="index prefix of the store"),
    ) -> None:
        """Write the Kibana saved objects (data views, visualizations, the SOC dashboard) as NDJSON."""
        from dashboards.kibana import to_ndjson

        text = to_ndjson(prefix)
        if out is None:
            write_generated(text)
        else:
            out.write_text(text)
            err_console.print(safe(_("wrote {n} saved objects to {path}").format(n=len(text.splitlines()), path=out)))

    @group.command("import-kibana")
    def import_kibana(
        url: str = typer.Option(..., "--url", help="Kibana base URL, e.g. http://127.0.0.1:5601"),
        prefix: str = typer.Option("ztsoc", "--prefix"),
    ) -> None:
        """Post the saved objects to Kibana's import API (overwrites earlier copies)."""
        from dashboards.kibana import import_to_kibana, to_ndjson

        try:
            result = import_to_kibana(to_ndjson(prefix), url, api_key=os.environ.get("SOC_KIBANA_API_KEY"))
        except OSError as exc:
            raise ValueError(_("cannot reach Kibana at {url}: {error}").format(url=url, error=exc)) from exc
        if not result.get("success"):
            err_console.print(safe(_("import failed: {errors}").format(errors=result.get("errors"))))
            raise typer.Exit(1)
        console.print(safe(_("imported {n} saved objects into {url}").format(n=result.get("successCount", 0), url=url)))
