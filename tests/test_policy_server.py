"""The HTTP decision server over real loopback HTTP (uvicorn), Envoy ext_authz style and JSON."""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from policy_tokens import DOMAIN, claims, forge, svid, verifier

from policy.canonical import FrontConfig, TrustedProxy
from policy.engine import Engine
from policy.language import policy_set_from_text
from policy.risk import StaticRisk
from policy.server import DecisionApp, DecisionHandler, RawServer, make_server

POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: portal-reads
    effect: allow
    source: {principals: ["spiffe://gov.example/ns/portal/sa/*"], ip_ranges: [10.0.0.0/8]}
    destination: {services: [records], methods: [GET], paths: ["/records/**"]}
  - name: health
    effect: allow
    destination: {services: [records], methods: [GET], paths: ["/healthz"]}
"""


#: The tests' client plays the proxy: loopback is trusted to name the service and append X-Forwarded-For.
LOOPBACK_PROXY = FrontConfig(proxies=(TrustedProxy("test-proxy", (ipaddress.ip_network("127.0.0.0/8"),),
                                                   client_address="x-forwarded-for",
                                                   service_header="x-ztsoc-service"),))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["raw", "uvicorn"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[int, Engine]]:
    """The same routes behind both front ends: the raw asyncio server and uvicorn (ASGI)."""
    engine = Engine.from_policy_set(policy_set_from_text(POLICY, "t.yaml"), verifier=verifier(), risk=StaticRisk())
    port = _free_port()
    handler = DecisionHandler(engine, authz_prefix="/authz", front=LOOPBACK_PROXY)
    srv: Any
    if request.param == "raw":
        srv = RawServer(handler, "127.0.0.1", port)
        thread = threading.Thread(target=srv.run, kwargs={"install_signals": False}, daemon=True)
    else:
        srv = make_server(DecisionApp(handler), "127.0.0.1", port)
        thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield port, engine
    if request.param == "raw":
        srv.stop()
    else:
        srv.should_exit = True
    thread.join(timeout=10)


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None,
         body: Any = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    conn.request(method, path, body=data, headers=headers or {})
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def test_health_and_readiness(server: tuple[int, Engine]) -> None:
    port, _ = server
    assert call(port, "GET", "/healthz")[0] == 200
    status, _, body = call(port, "GET", "/readyz")
    assert status == 200 and json.loads(body)["policy_version"]


def test_ext_authz_allows_a_verified_workload(server: tuple[int, Engine]) -> None:
    port, _ = server
    status, headers, _ = call(port, "GET", "/authz/records/42?x=1", {
        "host": "records.gov.example:8443", "x-ztsoc-service": "records",
        "authorization": f"Bearer {svid('/ns/portal/sa/web')}", "x-forwarded-for": "203.0.113.5, 10.3.4.5"})
    assert status == 200
    assert headers["x-ztsoc-decision"] == "allow" and headers["x-ztsoc-decision-id"]
    assert headers["x-ztsoc-principal"] == f"spiffe://{DOMAIN}/ns/portal/sa/web"
    assert "t/portal-reads" in headers["x-ztsoc-reason"]


def test_ext_authz_denies_with_reason_headers(server: tuple[int, Engine]) -> None:
    port, _ = server
    # Same token, but the proxy-appended hop is outside 10/8.
    status, headers, body = call(port, "GET", "/authz/records/42", {
        "x-ztsoc-service": "records", "authorization": f"Bearer {svid('/ns/portal/sa/web')}",
        "x-forwarded-for": "10.3.4.5, 203.0.113.5"})
    assert status == 403 and headers["x-ztsoc-decision"] == "deny"
    assert "default deny" in headers["x-ztsoc-reason"] and b"denied" in body
    status, headers, _ = call(port, "GET", "/authz/records/42", {
        "x-ztsoc-service": "records", "authorization": "Bearer " + forge({"alg": "none"}, claims(), None),
        "x-forwarded-for": "10.1.1.1"})
    assert status == 403 and "alg 'none'" in headers["x-ztsoc-reason"]
    # No service header: the Host authority (the client's choice) does not name the service.
    status, headers, _ = call(port, "GET", "/authz/healthz", {"host": "records:80", "x-forwarded-for": "10.1.1.1"})
    assert status == 403 and "sent 0 x-ztsoc-service headers" in headers["x-ztsoc-reason"]
    status, headers, _ = call(port, "GET", "/authz/healthz", {"x-ztsoc-service": "records",
                                                              "x-forwarded-for": "10.1.1.1"})
    assert status == 200 and "t/health" in headers["x-ztsoc-reason"]


def test_json_decide(server: tuple[int, Engine]) -> None:
    port, _ = server
    status, headers, body = call(port, "POST", "/v1/decide", {}, {
        "service": "records", "method": "GET", "path": "/records/1",
        "token": svid("/ns/portal/sa/web"), "source_ip": "10.1.1.1"})
    out = json.loads(body)
    assert status == 200 and out["allow"] is True and out["rules"] == ["t/portal-reads"]
    assert headers["x-ztsoc-decision-id"] == out["decision_id"]
    status, _, body = call(port, "POST", "/v1/decide", {}, b"{not json")
    assert status == 400 and json.loads(body)["allow"] is False
    status, _, body = call(port, "POST", "/v1/decide", {}, {"service": "records"})
    assert status == 400 and "missing method, path" in json.loads(body)["reason"]
    assert call(port, "POST", "/v1/decide", {}, b"x" * 70_000)[0] == 413
    assert call(port, "GET", "/v1/decide")[0] == 405


def test_default_bind_is_loopback() -> None:
    engine = Engine.from_policy_set(policy_set_from_text(POLICY), risk=StaticRisk())
    assert make_server(DecisionApp(DecisionHandler(engine))).config.host == "127.0.0.1"
    assert RawServer(DecisionHandler(engine)).host == "127.0.0.1"


def test_network_callers_cannot_assert_risk_time_or_claims() -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from policy.request import Risk

    other_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(datetime.now(UTC).weekday() + 3) % 7]
    text = f"""\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: clean
    effect: allow
    destination: {{services: [a]}}
    when: {{risk: {{max_open_alerts: 0}}}}
  - name: clerks
    effect: allow
    destination: {{services: [b]}}
    when: {{claims: {{roles: {{any: [clerk]}}}}}}
  - name: someday
    effect: allow
    destination: {{services: [c]}}
    when: {{time: {{days: [{other_day}]}}}}
"""
    risky = StaticRisk({"mallory": Risk(3, "high", 4)})
    app = DecisionApp(DecisionHandler(Engine.from_policy_set(policy_set_from_text(text), risk=risky)))
    when = (datetime.now(UTC) + timedelta(days=3)).isoformat()

    def decide(body: dict[str, Any]) -> dict[str, Any]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

        async def send(msg: Any) -> None:
            sent.append(msg)

        asyncio.run(app({"type": "http", "method": "POST", "path": "/v1/decide", "headers": []}, receive, send))
        return dict(json.loads(sent[1]["body"]))

    base = {"method": "GET", "path": "/"}
    assert decide({**base, "service": "a", "principal": "alice"})["allow"] is True
    assert decide({**base, "service": "a", "principal": "mallory", "risk": {"open_alerts": 0}})["allow"] is False
    assert decide({**base, "service": "b", "roles": ["clerk"]})["allow"] is False  # anonymous: roles dropped
    assert decide({**base, "service": "c", "time": when})["allow"] is False  # the body's clock is ignored


def test_orphan_spill_files_are_replayed(tmp_path: Path) -> None:
    from eventstore import open_store
    from policy.decision_log import decision_event
    from policy.request import Request
    from policy.server import ServeConfig, replay_orphan_spills

    engine = Engine.from_policy_set(policy_set_from_text(POLICY), risk=StaticRisk())
    docs = []
    for i in range(30):
        r = Request("records", "GET", f"/healthz/{i}")
        docs.append(decision_event(r, engine.decide(r)))
    (tmp_path / "spill.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[:10]))
    (tmp_path / "spill.jsonl.4242").write_text("".join(json.dumps(d) + "\n" for d in docs[10:]))
    url = f"sqlite:///{tmp_path / 'soc.db'}"
    cfg = ServeConfig(policy=[], store_url=url, spill=str(tmp_path / "spill.jsonl"))
    assert replay_orphan_spills(cfg) == 30
    assert not list(tmp_path.glob("spill.jsonl*"))
    store = open_store(url)
    try:
        assert store.count('event.dataset:"policy.decision"') == 30
    finally:
        store.close()


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        s.settimeout(2)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_raw_front_end_framing(server: tuple[int, Engine], request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["server"] != "raw":
        pytest.skip("framing limits are the raw front end's own; uvicorn has its own")
    port, _ = server
    # Two pipelined requests, then one with Connection: close: three answers in order, then EOF.
    out = _raw(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
                     b"GET /authz/healthz HTTP/1.1\r\nhost: records\r\nx-ztsoc-service: records\r\n"
                     b"x-forwarded-for: 10.0.0.1\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 3 and b"x-ztsoc-decision: allow" in out.lower()
    assert b"HTTP/1.1 400" in _raw(port, b"NOT HTTP AT ALL\r\n\r\n")
    assert b"HTTP/1.1 414" in _raw(port, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    huge = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 1000) for i in range(80))
    assert b"HTTP/1.1 431" in _raw(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + huge + b"\r\n")


def test_asgi_app_routes_the_admin_port_apart() -> None:
    """uvicorn workers bind the decision and admin sockets; the app tells them apart by server port."""
    import asyncio

    engine = Engine.from_policy_set(policy_set_from_text(POLICY), risk=StaticRisk())
    app = DecisionApp(DecisionHandler(engine, authz_prefix="", separate_admin=True,
                                      front=FrontConfig(service="records")), admin_port=9182)

    def get(port: int, path: str, method: str = "GET") -> int:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg: Any) -> None:
            sent.append(msg)

        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"host", b"x")], "client": ("10.1.1.1", 1234), "server": ("127.0.0.1", port),
                 "http_version": "1.1"}
        asyncio.run(app(scope, receive, send))
        return int(sent[0]["status"])

    assert get(9182, "/healthz") == 200 and get(9182, "/records/1") == 404
    assert get(9181, "/healthz") == 200  # decided: t/health allows GET /healthz on records
    assert get(9181, "/healthz", "POST") == 403 and get(9181, "/readyz") == 403
