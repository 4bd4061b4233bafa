"""``soc policy serve``: the HTTP decision server, a bare ASGI app run by uvicorn (httptools).

Endpoints:

- Envoy ``ext_authz`` (HTTP service): every request under ``authz_prefix`` (default: any
  path not listed below) is the original request; the method and path are the original
  ones (minus the prefix), the bearer token comes from ``Authorization``, the destination
  service from ``x-ztsoc-service`` (set it with ``authorization_request.headers_to_add``)
  or else the ``Host`` authority, the source IP from ``x-envoy-external-address`` or the
  last ``x-forwarded-for`` hop (the one the trusted proxy appended). Answer: 200 or 403,
  with ``x-ztsoc-decision-id``, ``x-ztsoc-decision`` and ``x-ztsoc-reason``; an allowed
  request also gets ``x-ztsoc-principal`` for ``allowed_upstream_headers``.
- ``POST /v1/decide``: the JSON ``Request`` shape in, the ``Decision`` JSON out.
- ``GET /healthz`` (the process answers) and ``GET /readyz`` (a policy is loaded and the
  risk snapshot is fresh, so risk-based rules are not failing closed).

A bare ASGI callable rather than a framework: the decision itself costs microseconds, so
routing and validation layers would dominate the latency budget.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class DecisionApp:
    engine: Engine
    authz_prefix: str = ""
    service_header: str = "x-ztsoc-service"
    ready: Callable[[], tuple[bool, str]] | None = None
    #: Run at lifespan shutdown, before uvicorn re-raises SIGTERM/SIGINT and the process ends:
    #: the decision log's last flush must happen here, not in a ``finally`` after ``run()``.
    on_shutdown: tuple[Callable[[], None], ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    for hook in self.on_shutdown:
                        try:
                            hook()
                        except Exception:
                            log.exception("shutdown hook failed")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if not self.authz_prefix or not path.startswith(self.authz_prefix):
            if path == "/v1/decide":
                if method != "POST":
                    return await self._json(send, 405, {"error": "use POST"})
                return await self._decide_json(scope, receive, send)
            if path == "/healthz":
                return await self._json(send, 200, {"status": "ok"})
            if path == "/readyz":
                ok, why = self._readiness()
                return await self._json(send, 200 if ok else 503, {"ready": ok, "reason": why, **self.engine.status()})
            if self.authz_prefix:
                return await self._json(send, 404, {"error": f"not found: {path[:200]}"})
        await self._ext_authz(scope, send)

    def _readiness(self) -> tuple[bool, str]:
        if self.ready is not None:
            return self.ready()
        return True, "policy loaded"

    async def _json(self, send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(payload)).encode()), *(headers or [])]})
        await send({"type": "http.response.body", "body": payload})

    async def _decide_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            body = msg.get("body", b"")
            size += len(body)
            if size > MAX_BODY:
                return await self._json(send, 413, {"allow": False, "reason": f"request body over {MAX_BODY} bytes"})
            chunks.append(body)
            if not msg.get("more_body"):
                break
        try:
            req = Request.from_dict(json.loads(b"".join(chunks)), trusted=False)
        except (ValueError, TypeError) as exc:
            return await self._json(send, 400, {"allow": False, "action": "deny", "reason": f"bad request: {exc}"})
        d = self.engine.decide(req)
        await self._json(send, 200, {**d.to_dict(), "reason": d.reason, "principal": req.principal},
                         decision_headers(d))

    async def _ext_authz(self, scope: Scope, send: Send) -> None:
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            headers[k.decode("latin-1")] = v.decode("latin-1")
        path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or scope["path"]
        if self.authz_prefix:
            path = path[len(self.authz_prefix):] or "/"
        service = headers.get(self.service_header) or headers.get("host", "").rsplit(":", 1)[0]
        ip = headers.get("x-envoy-external-address")
        if not ip and "x-forwarded-for" in headers:
            ip = headers["x-forwarded-for"].rsplit(",", 1)[-1].strip()
        if not ip and scope.get("client"):
            ip = scope["client"][0]
        req = Request(service=service, method=scope["method"], path=path, token=bearer(headers.get("authorization")),
                      source_ip=ip)
        # ext_authz carries no asserted principal: identity only from the verified token.
        d = self.engine.decide(req)
        extra = decision_headers(d)
        if d.allow:
            if req.principal:
                extra.append((b"x-ztsoc-principal", _header_safe(req.principal)))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"0"), *extra]})
            await send({"type": "http.response.body", "body": b""})
        else:
            body = f"denied: {d.reason}\n".encode("utf-8", "replace")[:2048]
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()), *extra]})
            await send({"type": "http.response.body", "body": body})


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


def make_server(app: DecisionApp, host: str = "127.0.0.1", port: int = 8181) -> Any:
    """A configured ``uvicorn.Server`` (httptools parser when installed); call ``.run()``."""
    import importlib.util

    import uvicorn

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    config = uvicorn.Config(app, host=host, port=port, http=http, loop=loop, lifespan="on",
                            access_log=False, log_level="warning", server_header=False, date_header=False,
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
    authz_prefix: str = ""
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


def build_app(cfg: ServeConfig) -> DecisionApp:
    """Risk snapshot, decision log and engine started for this process, wired to the app."""
    from eventstore import open_store
    from policy.decision_log import DecisionLog
    from policy.engine import build_engine
    from policy.risk import StoreRisk

    url = cfg.store_url
    risk = StoreRisk(lambda: open_store(url)).start()
    sink = None
    if cfg.log:
        spill = Path(cfg.spill)
        if cfg.per_process_spill:
            spill = spill.with_name(f"{spill.name}.{os.getpid()}")
        sink = DecisionLog(lambda: open_store(url), spill).start()
    try:
        engine = build_engine(cfg.policy, trust_file=cfg.trust, risk=risk, sink=sink, watch=cfg.watch,
                              trust_asserted_principal=cfg.trust_asserted_principal)
    except BaseException:
        risk.stop()
        if sink is not None:
            sink.close()
        raise

    def ready() -> tuple[bool, str]:
        if not risk.fresh():
            return False, f"risk snapshot not fresh: {risk.last_error or 'first refresh pending'}"
        return True, "policy loaded, risk fresh"

    def shutdown() -> None:
        engine.stop()
        risk.stop()
        if sink is not None:
            sink.close()  # last flush; what the store does not take stays in the spill file

    tune_process()
    return DecisionApp(engine, authz_prefix=cfg.authz_prefix, ready=ready, on_shutdown=(shutdown,))


def app_from_env() -> DecisionApp:
    """uvicorn factory for ``--workers N``: each worker builds its own engine, risk and log."""
    return build_app(ServeConfig.from_env())


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


def serve(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8181, workers: int = 1) -> None:
    """Run until SIGTERM/SIGINT; one process, or ``workers`` processes on one socket."""
    if workers <= 1:
        app = build_app(cfg)
        try:
            make_server(app, host, port).run()
        finally:
            for hook in app.on_shutdown:
                hook()
        return
    import importlib.util

    import uvicorn

    replay_orphan_spills(cfg)
    cfg.per_process_spill = True
    os.environ[CONFIG_ENV] = cfg.to_env()
    uvicorn.run("policy.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                http="httptools" if importlib.util.find_spec("httptools") else "h11", lifespan="on",
                access_log=False, log_level=os.environ.get("ZTSOC_PDP_LOG_LEVEL", "warning"), server_header=False,
                date_header=False, backlog=2048)
