"""``soc dashboard serve|export-kibana|import-kibana``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from soc_cli.context import StoreOption, use_store
from soc_cli.output import console, err_console, esc, safe, write_generated


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The local web dashboard and the Kibana saved objects.", no_args_is_help=True)
    app.add_typer(group, name="dashboard")

    @group.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8750, "--port"),
        token: str = typer.Option(None, "--token", envvar="SOC_DASHBOARD_TOKEN",
                                  help="required from clients when bound beyond loopback (generated if not given)"),
        store: str = StoreOption,
    ) -> None:
        """Serve the dashboard and its JSON API (GET /api lists the routes)."""
        from dashboards.server import make_server

        server, app_ = make_server(use_store(store), host, port, token=token)
        where = f"http://{host}:{server.server_address[1]}/"
        if app_.token:
            err_console.print(f"[yellow]bound to {esc(host)}, not loopback: every request needs the token[/]")
            console.print(safe(f"dashboard: {where}?token={app_.token}"))
        else:
            console.print(safe(f"dashboard: {where}  (loopback only; API: {where}api)"))
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

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
            err_console.print(safe(f"wrote {len(text.splitlines())} saved objects to {out}"))

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
            raise ValueError(f"cannot reach Kibana at {url}: {exc}") from exc
        if not result.get("success"):
            err_console.print(safe(f"import failed: {result.get('errors')}"))
            raise typer.Exit(1)
        console.print(safe(f"imported {result.get('successCount', 0)} saved objects into {url}"))
