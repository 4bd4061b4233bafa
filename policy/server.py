"""``soc policy serve``: the HTTP decision server.

Two front ends over one set of routes (``DecisionHandler``): by default a raw asyncio
server on the ``httptools`` parser (the one uvicorn uses), which answers each request in
the parser callback, with no task, ASGI scope or coroutine per request, about twice
uvicorn's throughput on loopback (measured in ``bench/policy.py``'s development); and an
ASGI app (``DecisionApp``) that uvicorn runs for ``--workers N`` and that other ASGI
servers can mount. The HTTP handling that is hand-written is only the response framing;
parsing is httptools'.

Endpoints, one URL space per job (``DecisionHandler``):

- Decisions (Envoy ``ext_authz`` HTTP service, nginx ``auth_request``, Traefik
  ``forwardAuth``, Caddy ``forward_auth``): every request under ``authz_prefix`` (default
  ``/authz``; with no prefix, every request of the decision listener) is a proxied request,
  turned into a ``Request`` by ``policy.canonical`` (the one canonicaliser: method, path,
  the one ``Authorization``, Host, and which proxy headers to believe, from whom). Answer:
  200 only for an explicit allow, else 403 (400 for malformed HTTP), with
  ``x-ztsoc-decision-id``, ``x-ztsoc-decision`` and ``x-ztsoc-reason``; an allowed request
  also gets ``x-ztsoc-principal`` for ``allowed_upstream_headers``.
- The server's own endpoints, on the admin listener (``--admin-port``) or, without one, at
  fixed paths outside the prefix that a proxy configured with the prefix never produces:
  ``POST /v1/decide`` (the JSON ``Request`` shape in, the ``Decision`` JSON out; a bad body
  is 400 naming the field), ``GET /healthz`` and ``GET /readyz`` (a policy is loaded and the
  risk snapshot is fresh, so risk-based rules are not failing closed). Anything else: 404.

No web framework: the decision itself costs microseconds, so routing and validation
layers would dominate the latency budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from policy.canonical import FrontConfig, HttpRequest, Refused, canonical_request, refused_request, wire_text
from policy.engine import Engine
from policy.request import Decision, Request

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 64 * 1024
_JSON = (b"content-type", b"application/json")


def _header_safe(text: str, limit: int = 512) -> bytes:
    return text[:limit].encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")


def decision_headers(d: Decision) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ztsoc-decision-id", d.decision_id.encode()),
        (b"x-ztsoc-decision", d.action.encode()),
        (b"x-ztsoc-reason", _header_safe(d.reason)),
    ]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""


def _json_response(status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return Response(status, [_JSON, *(headers or [])], json.dumps(body, separators=(",", ":")).encode())


ADMIN_PATHS = ("/healthz", "/readyz", "/v1/decide")


def check_prefix(prefix: str) -> str:
    """An authz prefix keeps proxied requests apart from the server's own endpoints: ``/x`` form only."""
    if not prefix:
        return prefix
    if not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix or "?" in prefix or "%" in prefix:
        raise ValueError(f"authz prefix {prefix!r} must look like /authz (leading slash, no trailing slash)")
    if any(p == prefix or p.startswith(prefix + "/") for p in ADMIN_PATHS):
        raise ValueError(f"authz prefix {prefix!r} would cover the server's own endpoints")
    return prefix


@dataclass
class DecisionHandler:
    """The routes, as one synchronous function shared by both HTTP front ends.

    One URL space per job: on the decision listener every request under ``authz_prefix``
    (or every request, when there is no prefix) is a proxied request to decide, and only
    an explicit allow answers 200. The server's own endpoints (``/healthz``, ``/readyz``,
    ``/v1/decide``) answer on the admin listener (``admin_listener=True``) or, when there is
    a prefix and no admin listener, at those fixed paths outside the prefix, which a proxy
    configured with the prefix can never produce. Anything else is 404.
    """

    engine: Engine
    authz_prefix: str = "/authz"
    front: FrontConfig = field(default_factory=FrontConfig)
    #: The server's own endpoints are on a separate listener (``--admin-port``).
    separate_admin: bool = False
    ready: Callable[[], tuple[bool, str]] | None = None
    #: Run at shutdown, before the process ends: the decision log's last flush happens here.
    on_shutdown: tuple[Callable[[], None], ...] = ()

    def __post_init__(self) -> None:
        check_prefix(self.authz_prefix)
        if not self.authz_prefix and not self.separate_admin:
            raise ValueError("without an authz prefix, /healthz, /readyz and /v1/decide need their own listener "
                             "(--admin-port): otherwise a proxied request for /healthz would be answered 200")

    def shutdown(self) -> None:
        for hook in self.on_shutdown:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")
        self.on_shutdown = ()

    def handle(self, http: HttpRequest, body: bytes, *, admin_listener: bool = False) -> Response:
        """``http.target`` is the raw request target (path and query) as received."""
        proxied = self.proxied(http, admin_listener=admin_listener)
        if proxied is not None:
            return self.ext_authz(proxied)
        path = http.target.split("?", 1)[0]
        if admin_listener or (not self.separate_admin and path in ADMIN_PATHS):
            return self.admin(http.method, path, body)
        return _json_response(404, {"allow": False, "error": f"not found: {path[:200]}"})

    def proxied(self, http: HttpRequest, *, admin_listener: bool = False) -> HttpRequest | None:
        """The proxied request to decide (the prefix removed), or ``None`` for the server's own endpoints."""
        if admin_listener:
            return None
        prefix = self.authz_prefix
        if not prefix:
            return http
        path = http.target.split("?", 1)[0]
        if path == prefix or path.startswith(prefix + "/"):
            rest = http.target[len(prefix):]
            return replace(http, target=rest if rest.startswith("/") else "/" + rest)
        return None

    def refuse_http(self, http: HttpRequest, status: int, reason: str, *, admin_listener: bool = False) -> Response:
        """A request the HTTP layer refused before routing (target, headers or body too large, or not
        parseable): a deny logged like every other refusal when it was a proxied request, so every
        decision is logged. ``http`` holds what had been read (the target may be empty or partial);
        a request whose target is not known yet counts as proxied on the decision listener."""
        proxied = self.proxied(http, admin_listener=admin_listener) if http.target else (
            None if admin_listener else http)
        if proxied is None:
            return _json_response(status, {"allow": False, "reason": reason})
        return self._refused(proxied, status, reason)

    def _refused(self, http: HttpRequest, status: int, reason: str) -> Response:
        d = self.engine.refuse(refused_request(http, self.front), reason)
        return Response(status, [(b"content-type", b"text/plain; charset=utf-8"), *decision_headers(d)],
                        f"denied: {d.reason}\n".encode("utf-8", "replace")[:2048])

    def admin(self, method: str, path: str, body: bytes) -> Response:
        if path == "/v1/decide":
            if method != "POST":
                return _json_response(405, {"error": "use POST"})
            return self.decide_json(body)
        if path == "/healthz":
            return _json_response(200, {"status": "ok"})
        if path == "/readyz":
            ok, why = self.ready() if self.ready is not None else (True, "policy loaded")
            return _json_response(200 if ok else 503, {"ready": ok, "reason": why, **self.engine.status()})
        return _json_response(404, {"error": f"not found: {path[:200]}"})

    def decide_json(self, body: bytes) -> Response:
        try:
            req = Request.from_dict(json.loads(body), trusted=False)
        except (ValueError, TypeError, RecursionError) as exc:
            return _json_response(400, {"allow": False, "action": "deny", "reason": f"bad request: {exc}"})
        d = self.engine.decide(req)
        return _json_response(200, {**d.to_dict(), "reason": d.reason, "principal": req.principal},
                              decision_headers(d))

    def ext_authz(self, http: HttpRequest) -> Response:
        try:
            req = canonical_request(http, self.front)
        except Refused as exc:
            return self._refused(http, exc.status, str(exc))
        d = self.engine.decide(req)
        extra = decision_headers(d)
        if d.allow:
            if req.principal:
                extra.append((b"x-ztsoc-principal", _header_safe(req.principal)))
            return Response(200, extra)
        return Response(403, [(b"content-type", b"text/plain; charset=utf-8"), *extra],
                        f"denied: {d.reason}\n".encode("utf-8", "replace")[:2048])


def http_request_of(scope: Scope) -> HttpRequest:
    """An ASGI HTTP scope as the canonicaliser's ``HttpRequest`` (also used by ``policy.asgi``)."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    target = wire_text(raw)
    if scope.get("query_string"):
        target += "?" + wire_text(scope["query_string"])
    headers = [(k.decode("latin-1").lower(), wire_text(v)) for k, v in scope.get("headers", ())]
    client = scope.get("client")
    return HttpRequest(method=scope["method"], target=target, headers=headers, peer=client[0] if client else None,
                       http_version=scope.get("http_version", "1.1"))


@dataclass
class DecisionApp:
    """The handler as an ASGI app (for uvicorn workers, or mounting in another ASGI server)."""

    handler: DecisionHandler
    #: The admin listener's port: requests that arrived on it get the server's own endpoints.
    admin_port: int | None = None

    def is_admin(self, scope: Scope) -> bool:
        server = scope.get("server") or ("", None)
        return self.admin_port is not None and server[1] == self.admin_port

    @property
    def engine(self) -> Engine:
        return self.handler.engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self.handler.shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        chunks: list[bytes] = []
        size = 0
        too_big = False
        while True:
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                too_big = True
            elif chunk:
                chunks.append(chunk)
            if not msg.get("more_body"):
                break
        http, admin = http_request_of(scope), self.is_admin(scope)
        if too_big:
            resp = self.handler.refuse_http(http, 413, f"request body over {MAX_BODY} bytes", admin_listener=admin)
        else:
            resp = self.handler.handle(http, b"".join(chunks), admin_listener=admin)
        await send({"type": "http.response.start", "status": resp.status,
                    "headers": [(b"content-length", str(len(resp.body)).encode()), *resp.headers]})
        await send({"type": "http.response.body", "body": resp.body})


# -- the raw asyncio front end ---------------------------------------------------------------
_REASONS = {200: b"OK", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Payload Too Large", 414: b"URI Too Long", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}
MAX_URL = 16 * 1024
MAX_HEADERS = 64 * 1024
_LIMITS = {413: f"request body over {MAX_BODY} bytes", 414: f"request target over {MAX_URL} bytes",
           431: f"request headers over {MAX_HEADERS} bytes"}
IDLE_TIMEOUT_S = 75.0


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: httptools parses, the handler answers synchronously.

    No task or coroutine per request (the decision is microseconds of CPU), so a request
    costs a parser callback and one ``transport.write``; requests pipelined on a connection
    are answered in order. Oversized URLs, headers and bodies, and what httptools cannot parse,
    are refused (a logged deny, ``DecisionHandler.refuse_http``) and the connection closed; idle
    connections close after ``IDLE_TIMEOUT_S``.
    """

    def __init__(self, handler: DecisionHandler, *, admin: bool = False) -> None:
        import httptools

        self.handler = handler
        self.admin = admin
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: str | None = None
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.refused: int = 0
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else None
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.transport = None

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        if self.transport is not None:
            self.idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        import httptools

        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"bad request: {exc}")

    def _refuse(self, status: int, reason: str) -> None:
        """Refused at the HTTP layer: answered and logged by the handler (a logged deny when it was a
        proxied request), then the connection is closed; what had been read is what is logged."""
        # httptools reports a method only once the request line parsed (after an invalid one it says DELETE).
        method = self.parser.get_method().decode("latin-1") if self.url else ""
        http = HttpRequest(method=method, target=wire_text(self.url[:MAX_URL]), headers=self.headers,
                           peer=self.client, http_version=None)
        try:
            resp = self.handler.refuse_http(http, status, reason, admin_listener=self.admin)
        except Exception:  # the refusal is sent whatever happens to its log record
            log.exception("logging a refused request failed")
            resp = Response(status, [(b"x-ztsoc-decision", b"deny")], f"denied: {reason}\n".encode())
        self._reply(resp, keep_alive=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.header_bytes, self.body, self.body_size, self.refused = b"", [], 0, [], 0, 0

    def on_url(self, url: bytes) -> None:
        if len(self.url) > MAX_URL:
            self.refused = 414
        else:
            self.url += url  # bounded: at most MAX_URL plus one chunk is kept
            if len(self.url) > MAX_URL:
                self.refused = 414

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADERS:
            self.refused = 431
        else:
            self.headers.append((name.decode("latin-1").lower(), wire_text(value)))

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > MAX_BODY:
            self.refused = 413
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        keep = bool(self.parser.should_keep_alive())
        if self.refused:
            self._refuse(self.refused, _LIMITS[self.refused])
            return
        http = HttpRequest(method=self.parser.get_method().decode("latin-1"), target=wire_text(self.url),
                           headers=self.headers, peer=self.client, http_version=self.parser.get_http_version())
        try:
            resp = self.handler.handle(http, b"".join(self.body), admin_listener=self.admin)
        except Exception as exc:  # the engine fails closed itself; this guards the routing
            log.exception("request handling failed")
            resp = Response(403, [(b"x-ztsoc-decision", b"deny")], f"denied: internal error {exc}\n".encode())
        self.url, self.headers = b"", []  # a parse error before the next request must not log this one
        self._reply(resp, keep_alive=keep)

    def _reply(self, resp: Response, *, keep_alive: bool) -> None:
        if self.transport is None:
            return
        head = [b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\n" % (resp.status, _REASONS.get(resp.status, b"OK"),
                                                                len(resp.body))]
        head.extend(b"%s: %s\r\n" % (k, v) for k, v in resp.headers)
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        head.append(resp.body)
        self.transport.write(b"".join(head))
        if keep_alive:
            self._arm()
        else:
            self.transport.close()


class RawServer:
    """The default front end: an asyncio server speaking HTTP/1.1 through httptools."""

    def __init__(self, handler: DecisionHandler, host: str = "127.0.0.1", port: int = 8181,
                 admin_port: int | None = None, on_listening: Callable[[], None] | None = None) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.admin_port = admin_port
        #: Called once every listener is bound (the "serving on" banner: never before an error).
        self.on_listening = on_listening
        self.started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def serve(self, *, install_signals: bool = True) -> None:
        import signal

        loop = asyncio.get_running_loop()
        self._loop, self._stop = loop, asyncio.Event()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        servers = [await loop.create_server(lambda: _Connection(self.handler), self.host, self.port, backlog=2048,
                                            reuse_address=True)]
        if self.admin_port is not None:
            servers.append(await loop.create_server(lambda: _Connection(self.handler, admin=True), self.host,
                                                    self.admin_port, reuse_address=True))
        self.started = True
        if self.on_listening is not None:
            self.on_listening()
        try:
            await self._stop.wait()
        finally:
            for server in servers:
                server.close()
            self.started = False
            self.handler.shutdown()  # flush the decision log before the process ends

    def run(self, *, install_signals: bool = True) -> None:
        asyncio.run(self.serve(install_signals=install_signals))

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)


def tune_process() -> None:
    """Tail latency: the decision log and risk threads share the GIL with the event loop.

    A shorter switch interval (1 ms instead of 5) bounds how long a background batch can
    hold the loop up; freezing the objects alive at startup (compiled policy, keys) keeps
    them out of every later full garbage collection.
    """
    import gc
    import sys

    sys.setswitchinterval(0.001)
    gc.collect()
    gc.freeze()


def uvicorn_http() -> str:
    """uvicorn's HTTP protocol for the PDP: httptools (when installed) through
    ``policy.uvicorn_target``, which hands the scope the request target as sent (a
    ``#fragment`` included, refused by the canonicaliser as on the other fronts), else h11,
    which keeps it as sent itself."""
    import importlib.util

    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from policy.uvicorn_target import HTTP

    return HTTP


def make_server(app: DecisionApp, host: str = "127.0.0.1", port: int = 8181) -> Any:
    """A configured ``uvicorn.Server`` (``uvicorn_http``'s protocol); call ``.run()``."""
    import importlib.util

    import uvicorn

    http = uvicorn_http()
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    config = uvicorn.Config(app, host=host, port=port, http=http, loop=loop, lifespan="on",
                            access_log=False, log_level="warning", server_header=False, proxy_headers=False, date_header=False,
                            backlog=2048)
    return uvicorn.Server(config)


# -- assembling a server process ------------------------------------------------------------
CONFIG_ENV = "ZTSOC_PDP_CONFIG"


@dataclass
class ServeConfig:
    """Everything a server process needs; JSON in ``ZTSOC_PDP_CONFIG`` for worker processes."""

    policy: list[str]
    store_url: str
    spill: str
    trust: str | None = None
    authz_prefix: str = "/authz"
    #: The destination service when this listener decides for one service (else a trusted proxy names it).
    service: str | None = None
    #: A separate listener for /healthz, /readyz and /v1/decide (required without an authz prefix).
    admin_port: int | None = None
    log: bool = True
    watch: bool = True
    trust_asserted_principal: bool = False
    #: Set for worker processes: each spills to ``<spill>.<pid>`` so workers never share a file.
    per_process_spill: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        return cls(**json.loads(os.environ[CONFIG_ENV]))


def build_handler(cfg: ServeConfig) -> DecisionHandler:
    """Risk snapshot, decision log and engine started for this process, wired to the routes."""
    from eventstore import open_store
    from policy.canonical import load_front_config
    from policy.decision_log import ProcessDecisionLog
    from policy.engine import build_engine
    from policy.risk import StoreRisk

    front = load_front_config(cfg.trust, service=cfg.service)  # before any thread starts: errors stop here
    url = cfg.store_url
    risk = StoreRisk(lambda: open_store(url)).start()
    sink = None
    if cfg.log:
        spill = Path(cfg.spill)
        if cfg.per_process_spill:
            spill = spill.with_name(f"{spill.name}.{os.getpid()}")
        # Events are built and written in a writer process: the server's GIL only queues them.
        sink = ProcessDecisionLog(url, spill).start()
    try:
        engine = build_engine(cfg.policy, trust_file=cfg.trust, risk=risk, sink=sink, watch=cfg.watch,
                              trust_asserted_principal=cfg.trust_asserted_principal)
    except BaseException:
        risk.stop()
        if sink is not None:
            sink.close()
        raise

    def shutdown() -> None:
        engine.stop()
        risk.stop()
        if sink is not None:
            sink.close()  # last flush; what the store does not take stays in the spill file

    tune_process()
    return DecisionHandler(engine, authz_prefix=cfg.authz_prefix, front=front, separate_admin=cfg.admin_port is not None,
                           ready=risk.readiness, on_shutdown=(shutdown,))


def app_from_env() -> DecisionApp:
    """uvicorn factory for ``--workers N``: each worker builds its own engine, risk and log."""
    cfg = ServeConfig.from_env()
    return DecisionApp(build_handler(cfg), admin_port=cfg.admin_port)


def replay_orphan_spills(cfg: ServeConfig) -> int:
    """Before workers start: replay spill files left by earlier processes (``<spill>``, ``<spill>.<pid>``)."""
    from eventstore import open_store
    from policy.decision_log import DecisionLog

    base = Path(cfg.spill)
    replayed = 0
    for f in sorted(base.parent.glob(base.name + "*")):
        if f.suffix in (".tmp", ".refused") or not f.is_file():
            continue
        log = DecisionLog(lambda: open_store(cfg.store_url), f, retry_interval_s=0)
        log.flush()
        replayed += log.stats.replayed
        log.close()
    return replayed


def serve(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8181, workers: int = 1,
          on_listening: Callable[[], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT: the raw front end in one process, or uvicorn with ``workers``.

    ``on_listening`` (the banner) runs once the configuration has loaded and the ports are
    bound, so a bad trust file or a port in use is the only thing printed.
    """
    if workers <= 1:
        handler = build_handler(cfg)
        try:
            RawServer(handler, host, port, cfg.admin_port, on_listening=on_listening).run()
        finally:
            handler.shutdown()
        return
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from policy.canonical import load_front_config
    from policy.engine import build_engine

    load_front_config(cfg.trust, service=cfg.service)  # each worker loads these again; errors stop here first
    build_engine(cfg.policy, trust_file=cfg.trust, watch=False).stop()
    replay_orphan_spills(cfg)
    cfg.per_process_spill = True
    os.environ[CONFIG_ENV] = cfg.to_env()
    config = uvicorn.Config("policy.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                            http=uvicorn_http(), lifespan="on",
                            access_log=False, log_level=os.environ.get("ZTSOC_PDP_LOG_LEVEL", "warning"),
                            server_header=False, date_header=False, backlog=2048,
                            proxy_headers=False)  # policy.canonical alone decides which proxy header to believe
    sockets = [config.bind_socket()]
    if cfg.admin_port is not None:
        admin = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        admin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        admin.bind((host, cfg.admin_port))
        admin.set_inheritable(True)
        sockets.append(admin)
    if on_listening is not None:
        on_listening()
    Multiprocess(config, sockets=sockets).run()
