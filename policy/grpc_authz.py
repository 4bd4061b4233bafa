"""gRPC ext_authz front: ``envoy.service.auth.v3.Authorization/Check`` for Envoy and Istio.

Envoy's ``ext_authz`` filter with a ``grpc_service`` (and Istio's CUSTOM authorization
provider, ``envoyExtAuthzGrpc``) sends each request's attributes as a ``CheckRequest``;
this front turns them into the canonicaliser's ``HttpRequest`` (method, request target,
headers as received, the gRPC peer, and what the proxy reports: the client address and
the route's ``context_extensions`` service) and hands it to the same
``DecisionHandler.ext_authz`` as the HTTP front, so both fronts give the same decision,
reason headers and decision-log event for the same request, and the same refusals.
What the proxy reports is believed only when the gRPC peer is a trusted proxy configured
with ``client_address: reported`` / ``reported_service: true`` (``policy.canonical``).
The answer:

- allowed: gRPC status OK with ``ok_response``: ``x-ztsoc-decision-id``,
  ``x-ztsoc-decision``, ``x-ztsoc-reason`` and ``x-ztsoc-principal`` set on the upstream
  request (overwriting whatever the client sent), and any ``x-ztsoc-*`` header this
  decision did not set removed, so an upstream never reads a client-forged one;
- denied: gRPC status PERMISSION_DENIED with ``denied_response``: the HTTP status the
  HTTP front would answer (403, or 400 for a request that cannot be decided as sent),
  the same headers and body, which Envoy returns to the client.

Message types: the subset of Envoy's protos in ``policy/protos/envoy_ext_authz.proto``
(field numbers are Envoy's; see that file to regenerate). The method is registered with
a generic handler because the subset declares no service (its package is ztsoc's own).
The server is gRPC's own (``GrpcServer``) in the HTTP front's process: one engine, one
decision log. Plaintext by default (bind it to loopback or the pod network); ``GrpcTls``
adds TLS, and mutual TLS with a client CA, so only proxies holding a certificate from it
can call. A failure inside the handler answers PERMISSION_DENIED (fail
closed), never an RPC error Envoy might be configured to let through
(``failure_mode_allow``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from policy.canonical import HttpRequest, wire_text
from policy.protos import envoy_ext_authz_pb2 as pb
from policy.server import DecisionHandler, RawServer, Response, ServeConfig, build_handler

log = logging.getLogger(__name__)

CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"
SERVICE_NAME = "envoy.service.auth.v3.Authorization"
#: google.rpc.Code values.
GRPC_OK = 0
GRPC_PERMISSION_DENIED = 7
#: A CheckRequest carries headers (and, if Envoy is told to, a body); ztsoc reads no body.
MAX_MESSAGE = 1024 * 1024
#: The context_extensions key a route sets to name the destination service
#: (``check_settings.context_extensions``; Istio: not available, use the Host).
SERVICE_EXTENSION = "ztsoc-service"
#: Headers this front sets on an allowed request; any the decision did not set is removed.
ZTSOC_HEADERS = ("x-ztsoc-decision-id", "x-ztsoc-decision", "x-ztsoc-reason", "x-ztsoc-principal")
_OVERWRITE = pb.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def grpc_peer_address(peer: str | None) -> str | None:
    """The address in gRPC's peer string, or ``None`` (unknown) when it names none.

    gRPC reports ``ipv4:127.0.0.1:5555`` and ``ipv6:[::1]:5555``, percent-encoding the brackets
    (``ipv6:%5B::1%5D:5555``, gRPC 1.5x and later): decoded once here. ``unix:``,
    ``unix-abstract:``, ``vsock:`` and anything else carry no IP address. What is returned is
    still only text: ``policy.canonical`` parses it (the one place addresses are parsed), and a
    peer it cannot parse is an unknown source, never a ``source.ip``.
    """
    if not peer:
        return None
    kind, _, rest = unquote(peer).partition(":")
    if kind == "ipv4":
        host, sep, _port = rest.rpartition(":")
        return host if sep else rest
    if kind == "ipv6":
        if rest.startswith("["):
            end = rest.find("]")
            return rest[1:end] if end > 0 and rest[end + 1:end + 2] in ("", ":") else None
        return rest  # no brackets: no port either
    return None


def http_request_of_check(check: Any, peer: str | None) -> HttpRequest:
    """A ``CheckRequest`` as the canonicaliser's ``HttpRequest``: untrusted, exactly as reported.

    Headers come from ``header_map`` when Envoy sends raw headers (``encode_raw_headers``:
    a repeated header stays repeated) and from the ``headers`` map otherwise (where Envoy
    has joined repeats with ``,``, which the canonicaliser refuses for ``Authorization``).
    Pseudo-headers fill the method, target and Host when the dedicated fields are empty.
    ``peer`` is the gRPC caller (the proxy); ``attributes.source.address`` and the route's
    ``context_extensions`` service are *reported*: ``policy.canonical`` believes them only
    from a trusted proxy configured with ``client_address: reported`` / ``reported_service``.
    There is no HTTP/1.1 framing to check (``http_version=None``): the proxy parsed it.
    """
    attrs = check.attributes
    http = attrs.request.http
    raw: Sequence[tuple[str, str]]
    if http.header_map.headers:
        raw = [(h.key, h.value or wire_text(h.raw_value)) for h in http.header_map.headers]
    else:
        raw = list(http.headers.items())
    headers: list[tuple[str, str]] = []
    pseudo: dict[str, str] = {}
    for k, v in raw:
        name = k.lower()
        if name.startswith(":"):
            pseudo.setdefault(name, v)
        else:
            headers.append((name, v))
    host = http.host or pseudo.get(":authority", "")
    if host and not any(k == "host" for k, _ in headers):
        headers.insert(0, ("host", host))
    sock = attrs.source.address.socket_address
    return HttpRequest(
        method=http.method or pseudo.get(":method", ""), target=http.path or pseudo.get(":path", ""),
        headers=tuple(headers), peer=grpc_peer_address(peer), http_version=None,
        reported_source=sock.address or None,
        reported_service=attrs.context_extensions.get(SERVICE_EXTENSION) or None,
    )


def _header_options(headers: Sequence[tuple[bytes, bytes]]) -> list[Any]:
    return [pb.HeaderValueOption(header=pb.HeaderValue(key=k.decode("latin-1"), value=v.decode("latin-1")),
                                 append_action=_OVERWRITE) for k, v in headers]


def check_response(resp: Response) -> Any:
    """The HTTP front's answer as a ``CheckResponse``: 200 is OK, anything else a denial with that status."""
    if resp.status == 200:
        mine = [(k, v) for k, v in resp.headers if k.startswith(b"x-ztsoc-")]
        names = {k.decode("latin-1") for k, _ in mine}
        return pb.CheckResponse(
            status=pb.RpcStatus(code=GRPC_OK),
            ok_response=pb.OkHttpResponse(headers=_header_options(mine),
                                          headers_to_remove=[h for h in ZTSOC_HEADERS if h not in names]))
    reason = next((v.decode("latin-1") for k, v in resp.headers if k == b"x-ztsoc-reason"), "denied")
    return pb.CheckResponse(
        status=pb.RpcStatus(code=GRPC_PERMISSION_DENIED, message=reason),
        denied_response=pb.DeniedHttpResponse(status=pb.HttpStatus(code=resp.status),
                                              headers=_header_options(resp.headers),
                                              body=resp.body.decode("utf-8", "replace")))


def _denied_internal(exc: Exception) -> Any:
    return check_response(Response(403, [(b"x-ztsoc-decision", b"deny"),
                                         (b"x-ztsoc-reason", f"internal error: {type(exc).__name__}".encode())],
                                   b"denied: internal error\n"))


@dataclass
class CheckService:
    """``Authorization/Check`` over a ``DecisionHandler`` (the one the HTTP front uses)."""

    handler: DecisionHandler

    def decide(self, check: Any, peer: str | None) -> Any:
        try:
            # The HTTP front's own decision path: canonicaliser, engine, decision log, headers.
            resp = self.handler.ext_authz(http_request_of_check(check, peer))
        except Exception as exc:  # the engine fails closed itself; this guards the conversion
            log.exception("gRPC ext_authz check failed")
            return _denied_internal(exc)
        return check_response(resp)

    def check(self, request: Any, context: Any) -> Any:
        return self.decide(request, context.peer())

    def rpc_handler(self) -> Any:
        import grpc

        method = grpc.unary_unary_rpc_method_handler(self.check, request_deserializer=pb.CheckRequest.FromString,
                                                     response_serializer=pb.CheckResponse.SerializeToString)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"Check": method})


def _check_bindable(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen for gRPC on {host}:{port}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class GrpcTls:
    """TLS for the gRPC listener; with ``client_ca``, mutual TLS (a caller without a certificate
    that CA signed cannot even open the connection, before any attribute it reports is read)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> Any:
        import grpc

        try:
            pair = (self.key.read_bytes(), self.cert.read_bytes())
            ca = self.client_ca.read_bytes() if self.client_ca is not None else None
        except OSError as exc:
            raise OSError(f"gRPC TLS: cannot read {exc.filename}: {exc.strerror}") from None
        return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


class GrpcServer:
    """gRPC's own server (C core, HTTP/2) answering ``Authorization/Check`` from a small thread pool.

    The synchronous server, not ``grpc.aio``: measured on this machine under the bench load,
    296 us of process CPU per Check against 458 us for ``grpc.aio`` on the HTTP front's loop
    (the decision itself is ~10-20 us; the rest is gRPC's per-call machinery). The handler
    threads share the engine with the HTTP front (the engine and token cache are thread-safe).
    """

    def __init__(self, handler: DecisionHandler, host: str = "127.0.0.1", port: int = 9191,
                 threads: int = 2, tls: GrpcTls | None = None) -> None:
        self.service = CheckService(handler)
        self.host = host
        self.port = port
        self.threads = threads
        self.tls = tls
        self._server: Any = None

    def start(self) -> int:
        """Bind and start; the bound port (``port=0`` picks a free one). Raises ``OSError`` if it cannot bind."""
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        server = grpc.server(ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="ztsoc-grpc"),
                             options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_send_message_length", MAX_MESSAGE),
                                      ("grpc.so_reuseport", 0)])  # a second server on the port is an error
        server.add_generic_rpc_handlers((self.service.rpc_handler(),))
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        if self.port:
            _check_bindable(self.host, self.port)  # a clear error; gRPC's own is a log line and a bare failure
        credentials = self.tls.credentials() if self.tls is not None else None
        try:
            bound = (server.add_secure_port(address, credentials) if credentials is not None
                     else server.add_insecure_port(address))
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {address}: {exc}") from None
        if not bound:
            raise OSError(f"cannot listen for gRPC on {address}")
        server.start()
        self._server, self.port = server, bound
        return bound

    def stop(self, grace: float = 2.0) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None


async def serve_both(http: RawServer, grpc_server: GrpcServer, *, install_signals: bool = True) -> None:
    """The gRPC front (its threads) and the HTTP front (this event loop) until SIGTERM/SIGINT or ``http.stop()``.

    The gRPC port is bound first, so the HTTP front's ``on_listening`` (the banner) means both are.
    """
    grpc_server.start()
    try:
        await http.serve(install_signals=install_signals)
    finally:
        grpc_server.stop()


def serve(cfg: ServeConfig, host: str, port: int, grpc_port: int,
          on_listening: Callable[[], None] | None = None, tls: GrpcTls | None = None) -> None:
    """``soc policy serve --grpc-port``: both fronts in one process (one engine, one decision log)."""
    if tls is not None:
        tls.credentials()  # unreadable files are an error before anything starts
    handler = build_handler(cfg)
    try:
        asyncio.run(serve_both(RawServer(handler, host, port, cfg.admin_port, on_listening=on_listening),
                               GrpcServer(handler, host, grpc_port, tls=tls)))
    finally:
        handler.shutdown()
