"""The local web dashboard: a JSON API over ``dashboards.views`` and the page that draws it.

Served by the standard library's threading HTTP server: the dashboard is a handful of
requests a minute from a few analysts, so a framework would add weight and nothing else.
Routes are a table (``ROUTES``), the store is shared behind a lock (SQLite connections are
not shared across threads), and lifecycle actions go through ``detections.lifecycle`` so
a close from the page is recorded exactly like ``soc alerts close``.

Bound to 127.0.0.1 by default. Bound anywhere else, every request must carry the token
(``Authorization: Bearer``, or ``?token=`` for the page itself), and the server says so
when it starts.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import mimetypes
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dashboards.views import VIEWS, alert_detail
from detections import lifecycle
from eventstore.errors import QuerySyntaxError, StoreError
from eventstore.store import Store

STATIC = resources.files("dashboards") / "static"
MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, default=str, ensure_ascii=False).encode())


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


class Dashboard:
    """The application: routes and handlers, independent of the HTTP plumbing (tested directly)."""

    def __init__(self, store: Store, *, token: str | None = None, analyst: str | None = None) -> None:
        self.store = store
        self.token = token
        self.analyst = analyst
        self.lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response], str]] = [
            ("GET", re.compile(r"/healthz"), self.healthz, "liveness: {\"status\": \"ok\"}"),
            ("GET", re.compile(r"/api"), self.api_index, "this list of routes"),
            ("GET", re.compile(r"/api/alerts/(?P<alert_id>[^/]+)"), self.alert, "one alert with its evidence events"),
            ("POST", re.compile(r"/api/alerts/(?P<alert_id>[^/]+)/(?P<action>[a-z_]+)"), self.act,
             "lifecycle action (ack, assign, escalate, close, reopen, note); JSON body: note, assignee, reason"),
            ("GET", re.compile(r"/api/(?P<view>[a-z_]+)"), self.view,
             "page data: " + ", ".join(VIEWS) + "; query: since (15m, 24h, 7d or ISO), and for alerts: "
             "status, level, rule, entity, assignee, q (query string), limit"),
            ("GET", re.compile(r"/static/(?P<name>[A-Za-z0-9_.\-]+)"), self.static, "the page's files"),
            ("GET", re.compile(r"/favicon\.ico"), self.favicon, "the tab icon"),
            ("GET", re.compile(r"/"), self.index, "the dashboard page"),
        ]

    # -- dispatch -----------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict[str, str], headers: dict[str, str],
               body: bytes) -> Response:
        if self.token is not None and path != "/healthz" and not self._authorised(params, headers):
            return error(HTTPStatus.UNAUTHORIZED, "token required: Authorization: Bearer <token> or ?token=")
        for route_method, pattern, handler, _ in self.routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                try:
                    with self.lock:
                        return handler(params=params, headers=headers, body=body, **match.groupdict())
                except lifecycle.TransitionError as exc:
                    return error(HTTPStatus.CONFLICT, str(exc))
                except QuerySyntaxError as exc:
                    return error(HTTPStatus.BAD_REQUEST, str(exc))
                except (ValueError, KeyError) as exc:
                    return error(HTTPStatus.BAD_REQUEST, str(exc))
                except StoreError as exc:
                    return error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        if any(p.fullmatch(path) for _, p, _, _ in self.routes):
            return error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {path}")
        return error(HTTPStatus.NOT_FOUND, f"no route {path}")

    def _authorised(self, params: dict[str, str], headers: dict[str, str]) -> bool:
        assert self.token is not None
        given = params.get("token") or headers.get("authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    # -- handlers -----------------------------------------------------------------------
    def healthz(self, **_: Any) -> Response:
        return json_response({"status": "ok", "store": self.store.backend})

    def api_index(self, **_: Any) -> Response:
        return json_response([{"method": m, "path": p.pattern, "doc": doc} for m, p, _, doc in self.routes])

    def view(self, view: str, params: dict[str, str], **_: Any) -> Response:
        fn = VIEWS.get(view)
        if fn is None:
            return error(HTTPStatus.NOT_FOUND, f"no view {view!r}: expected one of {', '.join(VIEWS)}")
        return json_response(fn(self.store, params))

    def alert(self, alert_id: str, **_: Any) -> Response:
        detail = alert_detail(self.store, alert_id)
        return json_response(detail) if detail else error(HTTPStatus.NOT_FOUND, f"no alert {alert_id}")

    def act(self, alert_id: str, action: str, headers: dict[str, str], body: bytes, **_: Any) -> Response:
        data = json.loads(body or b"{}")
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        actor = headers.get("x-analyst") or self.analyst or lifecycle.analyst_name()
        request = lifecycle.Request(action=action, actor=actor, note=data.get("note"),
                                    assignee=data.get("assignee"), reason=data.get("reason"))
        if self.store.get_alert(alert_id) is None:
            return error(HTTPStatus.NOT_FOUND, f"no alert {alert_id}")
        return json_response(lifecycle.perform(self.store, alert_id, request))

    def static(self, name: str, **_: Any) -> Response:
        item = STATIC / name
        if not item.is_file():
            return error(HTTPStatus.NOT_FOUND, f"no file {name}")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(200, item.read_bytes(), kind)

    def favicon(self, **_: Any) -> Response:
        return Response(200, (STATIC / "favicon.svg").read_bytes(), "image/svg+xml")

    def index(self, **_: Any) -> Response:
        return Response(200, (STATIC / "index.html").read_bytes(), "text/html; charset=utf-8")


def make_handler(app: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ztsoc-dashboard"

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._send(error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large"))
                return
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(app.handle(method, url.path, dict(parse_qsl(url.query)), headers, body))

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
            self.end_headers()
            self.wfile.write(response.body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints what matters
            return

    return Handler


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(store: Store, host: str = "127.0.0.1", port: int = 8750, *,
                token: str | None = None) -> tuple[ThreadingHTTPServer, Dashboard]:
    """Build (not start) the server; a non-loopback bind always gets a token."""
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(24)
    app = Dashboard(store, token=token)
    server = ThreadingHTTPServer((host, port), make_handler(app))
    server.daemon_threads = True
    return server, app
