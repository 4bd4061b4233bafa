"""The local web dashboard: a JSON API over ``dashboards.views`` and the page that draws it.

A Starlette application on uvicorn. Every request first passes ``dashboards.guard`` (Host
allow-list, sign-in, CSRF / Origin / JSON for state changes, security headers); the
handlers here only read the store and call ``detections.lifecycle``, so a close from the
page is recorded exactly like ``soc alerts close``, under the signed-in analyst's name
(``request.state.actor``), never a name a client sends. The store is shared behind a lock
(SQLite connections are not shared across threads).

Bound to loopback (127.0.0.0/8, ::1) with no analyst tokens in the store, the actor is the
local OS user and the page says so. As soon as analysts have tokens
(``soc dashboard token add NAME``), or when bound beyond loopback (which needs them), each
analyst signs in with a personal link.

The page is rendered in the analyst's language (``dashboards.i18n``): their own choice,
kept with them in the store (``POST /api/language``, CSRF-checked like every change),
else the server's ``SOC_LANG``/``LANG``, else the browser's ``Accept-Language``. The JSON
API stays locale-free: keys, values, numbers and times are the same in every language
(only ``/api/alerts/ID?lang=vi`` asks for the rule's guide in Vietnamese).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import uvicorn
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dashboards import analysts, i18n
from dashboards.guard import Actor, Guard
from dashboards.hosts import HostAllowList, is_loopback
from dashboards.i18n import Refused, says
from dashboards.sessions import Sessions, cookie_header
from dashboards.views import VIEWS, alert_detail
from detections import lifecycle
from eventstore.errors import QuerySyntaxError, StoreError
from eventstore.store import Store
from locales import LANGUAGES, N_, _

STATIC = resources.files("dashboards") / "static"
MAX_BODY = 64 * 1024
#: the fields of an alert action's body: each a string or absent/null (a dict or a number was a 500)
ACTION_FIELDS = ("note", "assignee", "reason")
CONTENT_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".svg": "image/svg+xml", ".html": "text/html; charset=utf-8", ".md": "text/plain; charset=utf-8"}


#: the page template: autoescaped (every value it prints is escaped, translations included)
TEMPLATES = Environment(loader=PackageLoader("dashboards", "templates"), autoescape=True, undefined=StrictUndefined)


def error(status: int, message: i18n.Says | str, lang: str | None = None) -> JSONResponse:
    """``{"error": English}``, and ``"message"`` in ``lang`` when the page asked for one (dashboards.i18n):
    the dashboard's own messages through the catalog, a message raised below it through locales.raised."""
    body = message.body(lang) if isinstance(message, i18n.Says) else i18n.raised_body(message, lang)
    return JSONResponse(body, status)


async def json_body(request: Request) -> dict[str, Any] | JSONResponse:
    """The request's JSON object (at most ``MAX_BODY`` bytes), or the error response to send."""
    lang = i18n.display_language(request.headers)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return error(413, says(N_("body too large")), lang)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return error(400, says(N_("body is not JSON")), lang)
    except RecursionError:  # "[" * 30000 fits in MAX_BODY; the decoder recurses per level
        return error(400, says(N_("body is nested too deeply")), lang)
    if not isinstance(data, dict):
        return error(400, says(N_("body must be a JSON object")), lang)
    return data


class Dashboard:
    """The handlers, over one store; ``app`` is the Starlette application with the guard in front."""

    def __init__(self, store: Store, *, bind: str = "127.0.0.1", allow_hosts: tuple[str, ...] = (),
                 local_actor: str | None = None, server_language: str | None = None) -> None:
        self.store = store
        #: the server's own language (SOC_LANG / LANG), None: the browser's Accept-Language decides
        self.server_language = server_language if server_language is not None else i18n.server_language()
        self.lock = threading.Lock()
        self.bind = bind
        self.loopback = is_loopback(bind)
        self.hosts = HostAllowList.build(bind, allow_hosts)
        self.local_actor = local_actor or lifecycle.analyst_name()
        self.sessions = Sessions()
        self.routes = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/api", self.api_index, methods=["GET"]),
            Route("/api/session", self.session, methods=["GET"]),
            Route("/api/logout", self.logout, methods=["POST"]),
            Route("/api/language", self.set_language, methods=["POST"]),
            Route("/api/alerts/{alert_id}", self.alert, methods=["GET"]),
            Route("/api/alerts/{alert_id}/{action}", self.act, methods=["POST"]),
            Route("/api/{view}", self.view, methods=["GET"]),
            Route("/static/{name}", self.static, methods=["GET"]),
            Route("/favicon.ico", self.favicon, methods=["GET"]),
            Route("/", self.index, methods=["GET"]),
        ]
        self.app = Starlette(routes=self.routes, middleware=[Middleware(
            Guard, store=store, lock=self.lock, hosts=self.hosts, sessions=self.sessions,  # type: ignore[arg-type]
            local_actor=self.local_actor, loopback_bind=self.loopback)])

    def token_mode(self) -> bool:
        with self.lock:
            return not self.loopback or analysts.any_tokens(self.store)

    # -- handlers -----------------------------------------------------------------------
    def _locked(self, lang: str | None, fn: Any, *args: Any) -> Response:
        try:
            with self.lock:
                return fn(*args)
        except lifecycle.TransitionError as exc:
            return error(409, str(exc), lang)
        except Refused as exc:
            return error(400, exc.says, lang)
        except (QuerySyntaxError, ValueError, KeyError) as exc:
            return error(400, str(exc), lang)
        except StoreError as exc:
            return error(503, str(exc), lang)

    def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "store": self.store.backend})

    def api_index(self, request: Request) -> Response:
        return JSONResponse([{"methods": sorted(r.methods or ()), "path": r.path} for r in self.routes])

    def session(self, request: Request) -> Response:
        actor: Actor = request.state.actor
        return JSONResponse({"analyst": actor.name, "how": actor.how,
                             "csrf": actor.session.csrf if actor.session else None,
                             "token_mode": request.state.token_mode, "language": self.language(request)})

    def logout(self, request: Request) -> Response:
        """Sign out (a POST, so the guard's CSRF checks apply): the server-side session ends and the
        cookie expires. The local user has nothing server-side to end (``Sessions.local``): only
        the cookie goes, and the next page load is the local user again, as it would be anyway."""
        actor: Actor = request.state.actor
        if actor.session is not None and actor.how == "session":
            self.sessions.end(actor.session.id)
        return JSONResponse({"analyst": actor.name, "signed_out": True},
                            headers={"set-cookie": cookie_header(None).decode()})

    def language(self, request: Request) -> str:
        """The language of this request's analyst (their choice, the server's, the browser's)."""
        actor: Actor | None = getattr(request.state, "actor", None)
        chosen = None
        if actor is not None:
            with self.lock:
                chosen = analysts.language_of(self.store, actor.name)
        return i18n.request_language(chosen, self.server_language, request.headers.get("accept-language"))

    async def set_language(self, request: Request) -> Response:
        data = await json_body(request)
        if isinstance(data, Response):
            return data
        actor: Actor = request.state.actor
        language, lang = data.get("language"), i18n.display_language(request.headers)
        if not isinstance(language, str) or language not in LANGUAGES:
            return error(400, says(N_("language: expected one of {languages}"), languages=", ".join(LANGUAGES)), lang)

        def run() -> Response:
            analysts.set_language(self.store, actor.name, language, LANGUAGES)
            return JSONResponse({"analyst": actor.name, "language": language})
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self._locked, lang, run)

    def view(self, request: Request) -> Response:
        name = request.path_params["view"]
        fn, lang = VIEWS.get(name), i18n.display_language(request.headers)
        if fn is None:
            return error(404, says(N_("no view {name}: expected one of {views}"), name=repr(name),
                                   views=", ".join(VIEWS)), lang)
        return self._locked(lang, lambda: JSONResponse(fn(self.store, dict(request.query_params))))

    def alert(self, request: Request) -> Response:
        alert_id = request.path_params["alert_id"]
        lang, display = request.query_params.get("lang") or "en", i18n.display_language(request.headers)
        if lang not in LANGUAGES:
            return error(400, says(N_("lang: expected one of {languages}"), languages=", ".join(LANGUAGES)), display)

        def run() -> Response:
            detail = alert_detail(self.store, alert_id)
            if detail and lang != "en":  # the rule's guide in the asked language, its placeholders filled
                detail["guide"] = i18n.guide_in(detail["alert"], lang)
            return JSONResponse(detail) if detail else error(404, says(N_("no alert {id}"), id=alert_id), display)
        return self._locked(display, run)

    async def act(self, request: Request) -> Response:
        data = await json_body(request)
        if isinstance(data, Response):
            return data
        actor: Actor = request.state.actor
        alert_id, action = request.path_params["alert_id"], request.path_params["action"]
        lang = i18n.display_language(request.headers)
        for name in ACTION_FIELDS:
            if data.get(name) is not None and not isinstance(data[name], str):
                return error(400, says(N_("{field}: expected a string or null"), field=name), lang)

        def run() -> Response:
            req = lifecycle.Request(action=action, actor=actor.name, note=data.get("note"),
                                    assignee=data.get("assignee"), reason=data.get("reason"))
            if self.store.get_alert(alert_id) is None:
                return error(404, says(N_("no alert {id}"), id=alert_id), lang)
            return JSONResponse(lifecycle.perform(self.store, alert_id, req))
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self._locked, lang, run)

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not all(ch.isalnum() or ch in "_.-" for ch in name) or name.startswith("."):
            return error(404, says(N_("no file {name}"), name=name))
        item = STATIC / name
        if not item.is_file():
            return error(404, says(N_("no file {name}"), name=name))
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        return Response(item.read_bytes(), media_type=CONTENT_TYPES.get(suffix, "application/octet-stream"))

    def favicon(self, request: Request) -> Response:
        return Response((STATIC / "favicon.svg").read_bytes(), media_type="image/svg+xml")

    def index(self, request: Request) -> Response:
        text = i18n.PageText(self.language(request))
        html = TEMPLATES.get_template("index.html").render(
            lang=text.lang, _=text.gettext, value=text.value, languages=text.languages(),
            script_data=text.script_data())
        return Response(html, media_type="text/html; charset=utf-8", headers={"content-language": text.lang,
                                                                              "vary": "Accept-Language, Cookie"})


@dataclass
class Served:
    """A built (not started) server: ``run()`` blocks; ``start_in_thread()`` for tests and embedding."""

    server: uvicorn.Server
    dashboard: Dashboard
    thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def run(self) -> None:
        self.server.run()

    def start_in_thread(self, timeout: float = 30.0) -> Served:
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError("the dashboard server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)


def make_server(store: Store, host: str = "127.0.0.1", port: int = 8750, *, allow_hosts: tuple[str, ...] = (),
                local_actor: str | None = None) -> Served:
    """Build the server; beyond loopback the store must already hold analysts' tokens."""
    dashboard = Dashboard(store, bind=host, allow_hosts=allow_hosts, local_actor=local_actor)
    if not dashboard.loopback and not analysts.any_tokens(store):
        raise ValueError(_("--host {host} is beyond loopback: analysts need tokens first "
                           "(soc dashboard token add NAME), and each signs in with their own link").format(host=host))
    config = uvicorn.Config(dashboard.app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", server_header=False, proxy_headers=False)
    return Served(uvicorn.Server(config), dashboard)


def startup_message(served: Served, host: str) -> str:
    """The one line ``soc dashboard serve`` prints: where, who acts, which Host names are answered
    (in the terminal's language, like the rest of ``soc``; the page chooses its own)."""
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{served.port}/"
    d = served.dashboard
    hosts = ", ".join(["loopback", *sorted(d.hosts.extra)])
    if d.token_mode():
        who = _("analysts sign in with their personal link (soc dashboard token add NAME prints it)")
    else:
        who = _("loopback, no analyst tokens: actions are recorded as the local user {user}").format(
            user=d.local_actor)
    return _("dashboard: {where}  ({who}; answers Host: {hosts})").format(where=where, who=who, hosts=hosts)
