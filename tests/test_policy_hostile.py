"""Issue 13's hostile cases (classes 1-9) through the real decision server and Debian's nginx.

nginx runs the auth_request recipe the README ships (``policy/examples/proxies/nginx-auth-request.conf``,
ports substituted) in front of a recording upstream, so every case checks what matters:
whether the request reached the service. The decision server is ``RawServer`` (what
``soc policy serve`` runs) on loopback: nginx connects from 127.0.0.1, the one trusted proxy;
a hostile client connects from 127.0.0.2 (which has a critical open alert), a clean one from
127.0.0.3. Each refusal is looked up in the decision log by the ``X-Ztsoc-Decision-Id`` the
recipe returns, so the reason is checked too.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from policy_tokens import DOMAIN, claims, forge, jwk_of, keys, svid, user_token, verifier

from policy.canonical import FrontConfig, TrustedProxy
from policy.engine import Engine
from policy.language import policy_set_from_text
from policy.request import Decision, Request, Risk
from policy.risk import StaticRisk
from policy.server import DecisionApp, DecisionHandler, RawServer, make_server

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "policy" / "examples" / "proxies" / "nginx-auth-request.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx not installed (scripts/system-deps.sh)")

HOSTILE = "127.0.0.2"
CLEAN = "127.0.0.3"
PORTAL = f"spiffe://{DOMAIN}/ns/portal/sa/web"

POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: h
rules:
  - name: no-admin
    effect: deny
    destination: {services: [records], paths: ["/admin/..."]}
  - name: no-deletes
    effect: deny
    destination: {services: [records], methods: [DELETE]}
  - name: critical-risk
    effect: deny
    when: {risk: {min_level: critical}}
  - name: anyone-reads
    effect: allow
    destination: {services: [records], methods: [GET, HEAD]}
  - name: portal-workloads-write
    effect: allow
    source: {principal_kinds: [spiffe], principals: ["spiffe://gov.example/ns/portal/**"]}
    destination: {services: [records]}
  - name: office-writes
    effect: allow
    source: {ip_ranges: [10.20.0.0/16]}
    destination: {services: [records], methods: [PUT]}
  - name: sandbox-open
    effect: allow
    destination: {services: [sandbox]}
"""

# The recipe's nginx, as the trust file's proxies: entry describes it.
NGINX_PROXY = TrustedProxy("nginx", (ipaddress.ip_network("127.0.0.1/32"),), client_address="x-forwarded-for",
                           service_header="x-ztsoc-service", original_method="x-original-method",
                           original_uri="x-original-uri")


@dataclass
class Sink:
    """The decision log, kept in memory: decision id -> (request, decision)."""

    seen: dict[str, tuple[Request, Decision]] = field(default_factory=dict)

    def submit(self, request: Request, decision: Decision) -> None:
        self.seen[decision.decision_id] = (request, decision)


class Upstream(http.server.ThreadingHTTPServer):
    """The protected service: records every request that reaches it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, dict[str, str]]] = []

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one_request(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    return
                outer.hits.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("content-length", "8")
                self.end_headers()
                self.wfile.write(b"upstream")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass
class Nginx:
    port: int
    proc: subprocess.Popen[bytes]
    prefix: Path

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_nginx(prefix: Path, pdp_port: int, app_port: int) -> Nginx:
    """Debian's nginx with the shipped recipe, only the ports substituted."""
    prefix.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    recipe = RECIPE.read_text(encoding="utf-8")
    for old, new in (("127.0.0.1:8181", f"127.0.0.1:{pdp_port}"), ("127.0.0.1:9000", f"127.0.0.1:{app_port}"),
                     ("127.0.0.1:8080", f"127.0.0.1:{port}")):
        assert old in recipe
        recipe = recipe.replace(old, new)
    (prefix / "recipe.conf").write_text(recipe)
    temp = "\n".join(f"    {k}_temp_path {prefix / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (prefix / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        + "events { worker_connections 256; }\n"
        + f"http {{\n    access_log off;\n{temp}\n    include {prefix / 'recipe.conf'};\n}}\n")
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(f"nginx did not start: {(prefix / 'error.log').read_text(errors='replace')}") from None
    return Nginx(port, proc, prefix)


@dataclass
class Ports:
    pdp: int  # decisions under /authz, admin endpoints outside it
    fixed: int  # a listener for service "records" only, no prefix: every path is a decision
    admin: int  # that listener's admin port


@dataclass
class Stack:
    fronts: dict[str, Ports]  # the raw asyncio front (nginx's PDP) and uvicorn, same engine
    nginx: Nginx
    upstream: Upstream
    sink: Sink


def _run(server: RawServer) -> threading.Thread:
    t = threading.Thread(target=server.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    return t


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    sink = Sink()
    engine = Engine.from_policy_set(policy_set_from_text(POLICY, "h.yaml"), verifier=verifier(), sink=sink,
                                    risk=StaticRisk({HOSTILE: Risk(1, "critical", 5)}),
                                    trust_asserted_principal=False)
    fronts = {kind: Ports(_free_port(), _free_port(), _free_port()) for kind in ("raw", "uvicorn")}

    def handlers() -> tuple[DecisionHandler, DecisionHandler]:
        return (DecisionHandler(engine, front=FrontConfig((NGINX_PROXY,))),
                DecisionHandler(engine, authz_prefix="", separate_admin=True,
                                front=FrontConfig((NGINX_PROXY,), service="records")))

    raw = fronts["raw"]
    prefixed, fixed = handlers()
    servers = [RawServer(prefixed, "127.0.0.1", raw.pdp), RawServer(fixed, "127.0.0.1", raw.fixed, raw.admin)]
    threads = [_run(s) for s in servers]
    uv = fronts["uvicorn"]
    prefixed, fixed = handlers()
    uvicorns = [_run_uvicorn(DecisionApp(prefixed), [uv.pdp]),
                _run_uvicorn(DecisionApp(fixed, admin_port=uv.admin), [uv.fixed, uv.admin])]
    upstream = Upstream()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    nginx = start_nginx(tmp_path_factory.mktemp("nginx"), raw.pdp, upstream.server_address[1])
    _STACK_SINK[:] = [sink]
    yield Stack(fronts, nginx, upstream, sink)
    nginx.stop()
    upstream.shutdown()
    for s in servers:
        s.stop()
    for srv, _ in uvicorns:
        srv.should_exit = True
    for t in [*threads, *(t for _, t in uvicorns)]:
        t.join(timeout=10)


#: The running stack's decision log, for Hypothesis tests (which take no fixture but ``front``).
_STACK_SINK: list[Sink] = []


def _run_uvicorn(app: DecisionApp, ports: list[int]) -> tuple[Any, threading.Thread]:
    """uvicorn (what --workers N runs) on the given ports, the first the decision listener."""
    srv = make_server(app, "127.0.0.1", ports[0])
    socks = []
    for port in ports:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        socks.append(sock)
    t = threading.Thread(target=srv.run, kwargs={"sockets": socks}, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    return srv, t


@pytest.fixture(params=["raw", "uvicorn"])
def front(stack: Stack, request: pytest.FixtureRequest) -> Ports:
    """The decision server's ports, for each front end (the default raw server, and uvicorn)."""
    return stack.fronts[request.param]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def send(port: int, raw: bytes, source: str = CLEAN, timeout: float = 10) -> Reply:
    """Exact bytes on the wire (repeated headers, odd methods, no Host), from ``source``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(raw)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Reply(int(lines[0].split()[1]), headers, body)


def request(method: str, target: str, headers: list[tuple[str, str]] | None = None, *, host: bool = True,
            body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host:
        lines.append("Host: records.gov.example")
    lines += [f"{k}: {v}" for k, v in headers or []]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def via_nginx(st: Stack, method: str, target: str, headers: list[tuple[str, str]] | None = None,
              source: str = CLEAN) -> tuple[Reply, bool, str]:
    """The reply, whether the upstream saw the request, and the PDP's reason (by decision id)."""
    before = len(st.upstream.hits)
    reply = send(st.nginx.port, request(method, target, headers), source)
    reached = len(st.upstream.hits) > before
    did = reply.headers.get("x-ztsoc-decision-id", "")
    reason = st.sink.seen[did][1].reason if did in st.sink.seen else ""
    return reply, reached, reason


#: Headers, or a function making them when the test runs (tokens expire: a long suite outlives them).
Headers = list[tuple[str, str]] | Callable[[], list[tuple[str, str]]]


def bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


# -- through nginx ------------------------------------------------------------------------------
def test_nginx_controls_allowed_requests_reach_the_service(stack: Stack) -> None:
    reply, reached, reason = via_nginx(stack, "GET", "/public/x?q=1")
    assert reply.status == 200 and reached and "h/anyone-reads" in reason
    reply, reached, reason = via_nginx(stack, "POST", "/records/1", bearer(svid("/ns/portal/sa/web")))
    assert reply.status == 200 and reached and "h/portal-workloads-write" in reason
    assert stack.upstream.hits[-1][2]["x-ztsoc-principal"] == PORTAL


#: (case, method, target, client headers, client address, reason): every one a denial. Also sent
#: through the gRPC ext_authz front by tests/test_policy_grpc.py (the same cases, the same decisions).
HOSTILE_CASES: list[tuple[str, str, str, Headers, str, str]] = [
    # 1: a people IdP's token whose subject is a workload's SPIFFE ID.
    ("idp mints a workload", "POST", "/records/1", lambda: bearer(user_token(sub=PORTAL)), CLEAN, "outside the namespace"),
    # 2: source address headers from a client: the risk check and ip_ranges see the real client.
    ("XFF hides a critical client", "GET", "/public/x", [("X-Forwarded-For", "127.0.0.3"),
                                                          ("X-Envoy-External-Address", "127.0.0.3")], HOSTILE,
     "h/critical-risk"),
    ("XFF claims the office", "PUT", "/records/1", [("X-Forwarded-For", "10.20.3.4"),
                                                     ("X-Envoy-External-Address", "10.20.3.4")], CLEAN,
     "default deny"),
    # 3: the service from a client header.
    ("client names the service", "POST", "/records/1", [("X-Ztsoc-Service", "sandbox")], CLEAN, "default deny"),
    # 5: a method-specific deny.
    ("DELETE", "DELETE", "/records/1", lambda: bearer(svid("/ns/portal/sa/web")), CLEAN, "h/no-deletes"),
    # 6: the server's own endpoints are ordinary paths of the service here, decided by policy.
    ("POST /healthz", "POST", "/healthz", [], CLEAN, "default deny"),
    ("POST /v1/decide", "POST", "/v1/decide", [], CLEAN, "default deny"),
    # 7: the original method and URI, not GET /.
    ("anonymous write", "POST", "/records/1", [("X-Original-URI", "/public/x"), ("X-Original-Method", "GET")], CLEAN,
     "default deny"),
    ("admin", "GET", "/admin/x", [], CLEAN, "h/no-admin"),
    # 8: path forms that reached the upstream despite deny /admin/**.
    ("upper case", "GET", "/ADMIN/x", [], CLEAN, "h/no-admin"),
    ("trailing dot", "GET", "/admin./x", [], CLEAN, "ends in a dot"),
    ("trailing space", "GET", "/admin%20/x", [], CLEAN, "ends in a dot or space"),
    ("fullwidth solidus", "GET", "/admin%EF%BC%8Fx", [], CLEAN, "NFKC"),
    ("bare prefix", "GET", "/admin", [], CLEAN, "h/no-admin"),
    ("escaped letter", "GET", "/%61dmin/x", [], CLEAN, "h/no-admin"),
    # nginx forwards the target as sent (proxy_pass without a URI): a path that resolving would
    # change is refused, never decided as the resolved path (the upstream may route it unresolved).
    ("dot segments", "GET", "/public/../admin/x", [], CLEAN, "'.' or '..' segments"),
    ("dot segments into an allowed path", "GET", "/admin/../public/x", [], CLEAN, "'.' or '..' segments"),
    ("escaped dot segments", "GET", "/admin/%2e%2e/public/x", [], CLEAN, "'.' or '..' segments"),
    ("repeated slashes", "GET", "/public//x", [], CLEAN, "repeated slashes"),
    ("encoded slash", "GET", "/public/..%2Fadmin/x", [], CLEAN, "encodes '/'"),
    ("path parameter", "GET", "/admin;v=1/x", [], CLEAN, "path parameters"),
    # 9: a padded signature.
    ("padded token", "POST", "/records/1", lambda: [("Authorization", "Bearer " + svid("/ns/portal/sa/web") + "==")], CLEAN,
     "padding"),
]


@pytest.mark.parametrize(("case", "method", "target", "headers", "source", "why"), HOSTILE_CASES)
def test_nginx_hostile_requests_never_reach_the_service(stack: Stack, case: str, method: str, target: str,
                                                        headers: Headers, source: str, why: str) -> None:
    reply, reached, reason = via_nginx(stack, method, target, headers() if callable(headers) else headers, source)
    assert not reached, case
    assert reply.status == 403, (case, reply.status)
    assert why in reason, (case, reason)


@pytest.mark.parametrize("raw", [
    # 4: two Authorization headers (nginx itself refuses them with 400).
    request("POST", "/records/1", [("Authorization", "Bearer junk"), *bearer(svid("/ns/portal/sa/web"))]),
    # 5: methods that are not canonical.
    request("DELETE\t", "/records/1", bearer(svid("/ns/portal/sa/web"))),
    request("delete", "/records/1", bearer(svid("/ns/portal/sa/web"))),
    # 9: HTTP/1.1 without Host.
    request("GET", "/public/x", host=False),
])
def test_nginx_refuses_malformed_requests(stack: Stack, raw: bytes) -> None:
    before = len(stack.upstream.hits)
    reply = send(stack.nginx.port, raw)
    assert reply.status >= 400 and len(stack.upstream.hits) == before


def test_nginx_fails_closed_when_the_pdp_is_down_or_slow(stack: Stack, tmp_path: Path) -> None:
    # Down: nothing listens on the PDP port.
    down = start_nginx(tmp_path / "down", _free_port(), stack.upstream.server_address[1])
    # Slow: accepts connections, never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    slow = start_nginx(tmp_path / "slow", silent.getsockname()[1], stack.upstream.server_address[1])
    try:
        before = len(stack.upstream.hits)
        assert send(down.port, request("GET", "/public/x")).status == 500
        started = time.monotonic()
        assert send(slow.port, request("GET", "/public/x")).status == 500
        assert time.monotonic() - started < 8  # the recipe's proxy_read_timeout (2 s), not forever
        assert len(stack.upstream.hits) == before
    finally:
        down.stop()
        slow.stop()
        silent.close()


def test_readme_ships_the_tested_recipe() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = RECIPE.read_text(encoding="utf-8").splitlines()
    while lines[0].startswith("#"):  # the file's header comment; the README says it in prose
        lines.pop(0)
    assert "```nginx\n" + "\n".join(lines) + "\n```" in readme


# -- straight to the decision server -----------------------------------------------------------
def _decide_json(ports: Ports, body: Any) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return send(ports.pdp, request("POST", "/v1/decide", [("Content-Type", "application/json")], body=data))


def test_server_hostile_client_headers_are_not_believed(front: Ports) -> None:
    spoof = [("X-Ztsoc-Service", "sandbox"), ("X-Forwarded-For", "10.20.3.4"), ("X-Original-URI", "/public/x"),
             ("X-Original-Method", "GET"), ("X-Envoy-External-Address", "10.20.3.4")]
    # 3: from a client (not the trusted proxy) no header names the service.
    reply = send(front.pdp, request("POST", "/authz/records/1", spoof), HOSTILE)
    assert reply.status == 403 and "no destination service" in reply.headers["x-ztsoc-reason"]
    # 2, 7: on the fixed-service listener the client's address and its own method and path decide.
    reply = send(front.fixed, request("PUT", "/records/1", spoof), CLEAN)
    assert reply.status == 403 and "default deny" in reply.headers["x-ztsoc-reason"]
    reply = send(front.fixed, request("GET", "/public/x", spoof), HOSTILE)
    assert reply.status == 403 and "h/critical-risk" in reply.headers["x-ztsoc-reason"]
    # The trusted proxy's headers are believed.
    reply = send(front.fixed, request("GET", "/x", [("X-Forwarded-For", "10.20.3.4"), ("X-Original-Method", "PUT"),
                                                    ("X-Original-URI", "/records/1")]), "127.0.0.1")
    assert reply.status == 200 and "h/office-writes" in reply.headers["x-ztsoc-reason"]


@pytest.mark.parametrize(("raw", "status", "why"), [
    # 4: garbage then a valid token: refused, never "the last one wins".
    (request("POST", "/authz", [("X-Original-URI", "/records/1"), ("X-Original-Method", "POST"),
                                ("X-Ztsoc-Service", "records"), ("X-Forwarded-For", CLEAN),
                                ("Authorization", "Bearer junk"), *bearer(svid("/ns/portal/sa/web"))]),
     403, "2 Authorization headers"),
    # 5: the method the proxy reports, not a token or only case-different.
    (request("GET", "/authz", [("X-Original-URI", "/records/1"), ("X-Original-Method", "DELETE GET"),
                               ("X-Ztsoc-Service", "records"), ("X-Forwarded-For", CLEAN),
                               *bearer(svid("/ns/portal/sa/web"))]), 400, "not an RFC 9110 token"),
    (request("GET", "/authz", [("X-Original-URI", "/records/1"), ("X-Original-Method", "delete"),
                               ("X-Ztsoc-Service", "records"), ("X-Forwarded-For", CLEAN),
                               *bearer(svid("/ns/portal/sa/web"))]), 400, "only in case"),
    # 7: a trusted proxy that forgot the original URI is refused, not decided as GET /.
    (request("GET", "/authz", [("X-Original-Method", "GET"), ("X-Ztsoc-Service", "records"),
                               ("X-Forwarded-For", CLEAN)]), 403, "sent 0 x-original-uri headers"),
    # 9: HTTP/1.1 without Host.
    (request("GET", "/authz", [("X-Original-URI", "/public/x"), ("X-Original-Method", "GET"),
                               ("X-Ztsoc-Service", "records"), ("X-Forwarded-For", CLEAN)], host=False),
     400, "Host"),
])
def test_server_refuses_what_it_cannot_decide(stack: Stack, front: Ports, raw: bytes, status: int, why: str) -> None:
    reply = send(front.pdp, raw, "127.0.0.1")
    assert reply.status == status and reply.headers["x-ztsoc-decision"] == "deny"
    assert why in reply.headers["x-ztsoc-reason"]
    assert why in stack.sink.seen[reply.headers["x-ztsoc-decision-id"]][1].reason  # logged like any decision


def test_server_one_url_space_per_job(front: Ports) -> None:
    # 6: with a prefix, only /authz/... is a decision; /healthz answers outside it, and a path that
    # walks out of the prefix stays a decision.
    assert send(front.pdp, request("GET", "/healthz")).status == 200
    reply = send(front.pdp, request("POST", "/authz/../healthz", [("X-Ztsoc-Service", "records"),
                                                                   ("X-Forwarded-For", CLEAN)]), "127.0.0.1")
    assert reply.status == 403
    assert send(front.pdp, request("GET", "/authzfoo")).status == 404
    # Without a prefix, every path of the decision listener is decided; the admin port has the rest.
    for method, path in (("POST", "/healthz"), ("DELETE", "/readyz"), ("POST", "/v1/decide")):
        reply = send(front.fixed, request(method, path), CLEAN)
        assert reply.status == 403 and reply.headers["x-ztsoc-decision"] == "deny", path
    assert send(front.fixed, request("GET", "/healthz"), CLEAN).headers["x-ztsoc-reason"] == "allowed by h/anyone-reads"
    assert send(front.admin, request("GET", "/healthz")).status == 200
    assert send(front.admin, request("GET", "/records/1")).status == 404
    with pytest.raises(ValueError, match="own listener"):
        DecisionHandler(Engine.from_policy_set(policy_set_from_text(POLICY)), authz_prefix="")


def test_server_decide_api_is_validated(front: Ports, caplog: pytest.LogCaptureFixture) -> None:
    base = {"service": "records", "method": "POST", "path": "/records/1"}
    with caplog.at_level("WARNING"):
        # 9: a non-string token is a 400 naming the field, no traceback.
        reply = _decide_json(front, {**base, "token": 42})
        assert reply.status == 400 and "field 'token' must be a string" in json.loads(reply.body)["reason"]
        reply = _decide_json(front, {**base, "token": {"a": [1]}, "roles": 3})
        assert reply.status == 400
        assert _decide_json(front, b"[" * 100_000).status in (400, 413)
    assert not [r for r in caplog.records if r.exc_info]
    # 1 and 5 through the JSON API: decided (and denied) with the reason.
    out = json.loads(_decide_json(front, {**base, "token": user_token(sub=PORTAL)}).body)
    assert out["allow"] is False and "outside the namespace" in out["reason"]
    out = json.loads(_decide_json(front, {**base, "method": "DELETE ", "token": svid("/ns/portal/sa/web")}).body)
    assert out["allow"] is False and "not an RFC 9110 token" in out["reason"]
    out = json.loads(_decide_json(front, {**base, "token": svid("/ns/portal/sa/web")}).body)
    assert out["allow"] is True


def test_serve_refuses_a_key_set_with_duplicate_kids(tmp_path: Path) -> None:
    # 9: two keys under one kid: the server does not start (the last key would silently win).
    k = keys()
    (tmp_path / "bundle.json").write_text(json.dumps({"keys": [jwk_of(k.svid, "same"), jwk_of(k.ec, "same")]}))
    (tmp_path / "trust.yaml").write_text(f"spiffe:\n  - trust_domain: {DOMAIN}\n    audience: ztsoc-pdp\n"
                                         "    jwks_file: bundle.json\n")
    (tmp_path / "p.yaml").write_text(POLICY)
    proc = subprocess.run([sys.executable, "-m", "soc_cli.main", "--store", f"sqlite:///{tmp_path / 'soc.db'}",
                           "policy", "serve", "-p", str(tmp_path / "p.yaml"), "--trust", str(tmp_path / "trust.yaml"),
                           "--port", str(_free_port()), "--no-log"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "kid 'same' appears twice" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_token_forms_refused_the_same_way_everywhere() -> None:
    # The verifier behind every front: '=' padding in any segment is refused (class 9).
    token = forge({"alg": "ES256", "kid": "ec1", "typ": "JWT"}, claims(), keys().ec)
    head, payload, sig = token.split(".")
    for bad in (f"{head}=.{payload}.{sig}", f"{head}.{payload}=.{sig}", f"{head}.{payload}.{sig}="):
        with pytest.raises(Exception, match="padding"):
            verifier().verify(bad)


# -- IPv4-mapped IPv6: one address, one decision ------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=st.one_of(st.ip_addresses(v=4).map(str), st.sampled_from(["10.20.3.4", HOSTILE, CLEAN, "10.20.0.0"])),
       method=st.sampled_from(["PUT", "GET"]))
def test_a_mapped_address_is_decided_as_its_ipv4_form(front: Ports, address: str, method: str) -> None:
    """The trusted nginx forwarding ``::ffff:a.b.c.d`` (a dual-stack listener's $remote_addr) gets the
    decision of ``a.b.c.d``: IPv4 ip_ranges rules and the IP's risk apply to both forms."""
    def decide(forwarded: str) -> tuple[int, str, str | None]:
        sent = [("X-Forwarded-For", forwarded), ("X-Original-Method", method), ("X-Original-URI", "/records/1")]
        reply = send(front.fixed, request(method, "/records/1", sent), "127.0.0.1")
        did = reply.headers["x-ztsoc-decision-id"]
        rules = reply.headers["x-ztsoc-reason"].split(" (", 1)[0]
        return reply.status, rules, _STACK_SINK[0].seen[did][0].source_ip

    plain = decide(address)
    assert decide(f"::ffff:{address}") == plain and plain[2] == address
    if address == HOSTILE:
        assert "h/critical-risk" in plain[1]


# -- the raw and uvicorn fronts: one target, one decision (audit defect 8) ----------------------
_TARGET_PARTS = ["public", "admin", "records", "x", "..", ".", "", "%2e%2e", "#", "x#frag", "#", "?q=1", "?a#b", "%23",
                 "ADMIN", "caf%C3%A9", "adm%C4%B1n", "http:", "records.gov.example"]


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(st.sampled_from(_TARGET_PARTS), min_size=1, max_size=6), method=st.sampled_from(["GET", "PUT"]),
       absolute=st.booleans())
@example(parts=["public", "x#", "..", "..", "admin"], method="GET", absolute=False)  # the audit's p07 case
@example(parts=["public", "x"], method="GET", absolute=True)
def test_the_http_fronts_decide_every_target_alike(stack: Stack, parts: list[str], method: str,
                                                   absolute: bool) -> None:
    """The raw front and uvicorn (httptools, which drops a ``#fragment`` and an absolute-form
    target's scheme and host before the ASGI scope) hand the canonicaliser the same target:
    ``/public/x#/../../admin`` is refused by both, never allowed by one."""
    target = ("http://records.gov.example/" if absolute else "/") + "/".join(parts)
    outcomes = []
    for kind, ports in stack.fronts.items():
        reply = send(ports.fixed, request(method, target), CLEAN)
        decision = reply.headers.get("x-ztsoc-decision")
        outcomes.append((reply.status, decision, reply.headers.get("x-ztsoc-reason")))
        assert decision in ("allow", "deny"), (kind, target, reply)
        req, d = stack.sink.seen[reply.headers["x-ztsoc-decision-id"]]  # every decision is logged
        assert d.action == decision and req.method == method and req.source_ip == CLEAN
    assert outcomes[0] == outcomes[1], target
    if "#" in target.split("?", 1)[0] or absolute:
        assert outcomes[0][0] == 403 and "request refused" in str(outcomes[0][2]), target


@pytest.mark.parametrize(("kind", "raw", "status", "why"), [
    ("raw", request("GET", "/" + "a" * 20_000), 414, "request target over 16384 bytes"),
    ("raw", request("GET", "/records/1", [(f"X-H{i}", "v" * 1000) for i in range(80)]), 431,
     "request headers over 65536 bytes"),
    ("raw", b"GET /records/\xc3\xa9 HTTP/1.1\r\nHost: records\r\n\r\n", 400, "bad request: "),
    ("raw", b"NOT HTTP AT ALL\r\n\r\n", 400, "bad request: "),
    ("raw", request("POST", "/records/1", body=b"x" * 70_000), 413, "request body over 65536 bytes"),
    ("uvicorn", request("POST", "/records/1", body=b"x" * 70_000), 413, "request body over 65536 bytes"),
])
def test_requests_refused_by_the_http_layer_are_logged_denies(stack: Stack, kind: str, raw: bytes, status: int,
                                                              why: str) -> None:
    """A request the front's own HTTP layer refuses (too long, not HTTP) is a deny in the decision log
    like any other refusal. (uvicorn's own parser errors have no hook and stay unlogged.)"""
    reply = send(stack.fronts[kind].fixed, raw, CLEAN)
    assert reply.status == status and reply.headers["x-ztsoc-decision"] == "deny"
    assert why in reply.headers["x-ztsoc-reason"]
    req, d = stack.sink.seen[reply.headers["x-ztsoc-decision-id"]]
    assert d.reason.startswith("request refused: ") and why in d.reason
    assert (req.service, req.source_ip) == ("records", CLEAN)
