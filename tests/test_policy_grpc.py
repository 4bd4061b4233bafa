"""The gRPC ext_authz front, called by Envoy's own Go client (go-control-plane), against the HTTP front.

The client (``tests/go/extauthz``) is built here from the Go module proxy: it parses each
``CheckRequest`` and prints each ``CheckResponse`` with Envoy's descriptors, so a field
ztsoc's proto subset numbers or types differently from Envoy's would show. The decisions
test sends one generated set of requests through both fronts of one running server and
requires the same decision, status, reason and principal, and one decision-log event per
request with the same fields.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from policy_tokens import DOMAIN, claims, forge, svid, user_token, verifier

from policy.canonical import FrontConfig, proxies_from_config
from policy.decision_log import decision_event
from policy.engine import Engine
from policy.grpc_authz import GrpcServer, grpc_peer_address, http_request_of_check
from policy.language import policy_set_from_text
from policy.protos import envoy_ext_authz_pb2 as pb
from policy.request import Decision, Request
from policy.risk import StaticRisk
from policy.server import DecisionHandler, RawServer

ROOT = Path(__file__).resolve().parents[1]
CLIENT_SRC = ROOT / "tests" / "go" / "extauthz"

POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: no-admin
    effect: deny
    destination: {paths: ["/admin/**"]}
  - name: no-delete
    effect: deny
    destination: {services: [records], methods: [DELETE]}
  - name: portal-reads
    effect: allow
    source: {principals: ["spiffe://gov.example/ns/portal/sa/*"], ip_ranges: [10.0.0.0/8]}
    destination: {services: [records], methods: [GET, DELETE], paths: ["/records/**"]}
  - name: clerks
    effect: allow
    destination: {services: [records, payments], methods: [GET, POST]}
    when: {claims: {roles: {any: [clerk]}}}
  - name: health
    effect: allow
    destination: {services: [records], methods: [GET], paths: ["/healthz"]}
"""


def build_client(out_dir: Path) -> Path:
    """``go build`` the client (modules from the Go proxy; cached after the first build)."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        pytest.skip("Go is not installed (the ext_authz client is built from github.com/envoyproxy/go-control-plane)")
    binary = out_dir / "extauthz-client"
    proc = subprocess.run([go, "build", "-o", str(binary), "."], cwd=CLIENT_SRC, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "GOFLAGS": "-mod=readonly"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return binary


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_client(tmp_path_factory.mktemp("go"))


class ListSink:
    def __init__(self) -> None:
        self.seen: list[tuple[Request, Decision]] = []

    def submit(self, request: Request, decision: Decision) -> None:
        self.seen.append((request, decision))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    http_port: int
    grpc_port: int
    sink: ListSink


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    """One process, both fronts, one engine and one decision sink (as ``soc policy serve --grpc-port``)."""
    import asyncio

    sink = ListSink()
    engine = Engine.from_policy_set(policy_set_from_text(POLICY, "t.yaml"), verifier=verifier(), risk=StaticRisk(),
                                    sink=sink)
    # Two trusted proxies: an HTTP ext_authz proxy at 127.0.0.1 (client address and service in
    # headers it sets) and an Envoy calling the gRPC front from 127.0.0.2 (both reported).
    front = FrontConfig(proxies=proxies_from_config([
        {"name": "envoy-http", "addresses": ["127.0.0.1/32"], "client_address": "x-envoy-external-address",
         "service_header": "x-ztsoc-service"},
        {"name": "envoy-grpc", "addresses": ["127.0.0.2/32"], "client_address": "reported",
         "reported_service": True},
    ]))
    handler = DecisionHandler(engine, authz_prefix="/authz", front=front)
    http = RawServer(handler, "127.0.0.1", _free_port())
    grpc_server = GrpcServer(handler, "127.0.0.1", 0)

    async def main() -> None:
        grpc_server.start()
        try:
            await http.serve(install_signals=False)
        finally:
            grpc_server.stop(0)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (http.started and grpc_server.port) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert http.started and grpc_server.port
    yield Running(http.port, grpc_server.port, sink)
    http.stop()
    thread.join(timeout=10)


# -- one logical request, sent through either front ------------------------------------------
@dataclass(frozen=True)
class Case:
    method: str
    path: str
    service: str
    source_ip: str
    authorization: str | None


def check_json(c: Case) -> dict[str, Any]:
    """Envoy's proto3 JSON of the CheckRequest Envoy sends for this request."""
    headers = {":authority": f"{c.service}.gov.example", ":method": c.method, ":path": c.path,
               "user-agent": "curl/8"}
    if c.authorization is not None:
        headers["authorization"] = c.authorization
    return {"attributes": {
        "source": {"address": {"socketAddress": {"address": c.source_ip, "portValue": 40000}}},
        "destination": {"address": {"socketAddress": {"address": "10.9.9.9", "portValue": 8443}}},
        "request": {"http": {"id": "1", "method": c.method, "path": c.path, "host": f"{c.service}.gov.example",
                             "scheme": "https", "protocol": "HTTP/1.1", "headers": headers}},
        "contextExtensions": {"ztsoc-service": c.service},
    }}


def via_grpc(client: Path, port: int, checks: list[dict[str, Any]], source: str = "127.0.0.2") -> list[dict[str, Any]]:
    proc = subprocess.run([str(client), "-addr", f"127.0.0.1:{port}", "-source", source, "check"],
                          input="".join(json.dumps(c) + "\n" for c in checks), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == len(checks)
    return out


ENVOY_STATUS = {"BadRequest": 400, "Forbidden": 403, "URITooLong": 414, "Unauthorized": 401}


def grpc_outcome(line: dict[str, Any]) -> dict[str, Any]:
    assert "response" in line, line
    r = line["response"]
    if "ok_response" in r:
        assert r.get("status", {}).get("code", 0) == 0
        ok = r["ok_response"]
        headers = {h["header"]["key"]: h["header"]["value"] for h in ok.get("headers", [])}
        assert all(h.get("append_action") == "OVERWRITE_IF_EXISTS_OR_ADD" for h in ok["headers"])
        return {"status": 200, "headers": headers, "removed": sorted(ok.get("headers_to_remove", []))}
    denied = r["denied_response"]
    assert r["status"]["code"] == 7  # PERMISSION_DENIED
    headers = {h["header"]["key"]: h["header"]["value"] for h in denied.get("headers", [])}
    assert r["status"].get("message") == headers["x-ztsoc-reason"]
    # Envoy's StatusCode enum, printed by name: the number ztsoc sent decoded as Envoy's value.
    return {"status": ENVOY_STATUS[denied["status"]["code"]], "headers": headers, "body": denied.get("body", "")}


def via_http(port: int, c: Case) -> dict[str, Any]:
    import http.client

    headers = {"host": f"{c.service}.gov.example", "x-ztsoc-service": c.service,
               "x-envoy-external-address": c.source_ip, "user-agent": "curl/8"}
    if c.authorization is not None:
        headers["authorization"] = c.authorization
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(c.method, "/authz" + c.path, headers=headers)
    resp = conn.getresponse()
    out = {"status": resp.status, "headers": {k.lower(): v for k, v in resp.getheaders()},
           "body": resp.read().decode()}
    conn.close()
    return out


def generated_cases(n: int, seed: int) -> list[Case]:
    rnd = random.Random(seed)
    tokens = [None, f"Bearer {svid('/ns/portal/sa/web')}", f"Bearer {svid('/ns/other/sa/x')}",
              f"Bearer {user_token()}", f"Bearer {user_token(roles=['auditor'])}",
              "Bearer " + forge({"alg": "none"}, claims(), None), f"Bearer {svid(aud='someone-else')}",
              "Basic dXNlcjpwYXNz", "Bearer not.a.token"]
    paths = ["/records/1", "/records/7/notes?x=1", "/healthz", "/admin/users", "/payments/3", "/records/../admin/x",
             "/", "/records/a%20b"]
    return [Case(method=rnd.choice(["GET", "POST", "DELETE", "PUT"]), path=rnd.choice(paths),
                 service=rnd.choice(["records", "payments", "other"]),
                 source_ip=rnd.choice(["10.1.2.3", "10.200.0.9", "203.0.113.7", "2001:db8::1"]),
                 authorization=rnd.choice(tokens)) for _ in range(n)]


def _logged(req: Request, d: Decision) -> dict[str, Any]:
    doc = decision_event(req, d, 0.0)
    return {k: v for k, v in doc.items() if k not in ("@timestamp", "event.id", "ztsoc.policy.decision_id")}


def test_the_grpc_front_decides_as_the_http_front(server: Running, client: Path) -> None:
    # A fragment (audit p07: uvicorn's httptools dropped it) is refused by every front, never decided.
    cases = generated_cases(240, seed=13) + [Case("GET", f"/records/1#/../../admin/x{i}", "records", "10.1.2.3",
                                                  f"Bearer {svid('/ns/portal/sa/web')}") for i in range(3)]
    start = len(server.sink.seen)
    grpc_lines = via_grpc(client, server.grpc_port, [check_json(c) for c in cases])
    grpc_logged = server.sink.seen[start:]
    start = len(server.sink.seen)
    http_out = [via_http(server.http_port, c) for c in cases]
    http_logged = server.sink.seen[start:]
    assert len(grpc_logged) == len(http_logged) == len(cases)  # one decision-log event per request, both fronts
    kinds = set()
    for c, g_line, h, (gr, gd), (hr, hd) in zip(cases, grpc_lines, http_out, grpc_logged, http_logged, strict=True):
        g = grpc_outcome(g_line)
        assert g["status"] == h["status"], c
        for name in ("x-ztsoc-decision", "x-ztsoc-reason", "x-ztsoc-principal"):
            assert g["headers"].get(name) == h["headers"].get(name), (c, name)
        assert g["headers"]["x-ztsoc-decision-id"] == gd.decision_id
        assert h["headers"]["x-ztsoc-decision-id"] == hd.decision_id
        if g["status"] != 200:
            assert g["body"] == h["body"]
        else:
            assert ("x-ztsoc-principal" in g["removed"]) == ("x-ztsoc-principal" not in g["headers"])
        assert _logged(gr, gd) == _logged(hr, hd), c
        kinds.add((g["status"], g["headers"]["x-ztsoc-decision"]))
    # The generated set exercises allows and denies (not a vacuous agreement).
    assert {(200, "allow"), (403, "deny")} <= kinds
    assert all("contains a '#'" in g["headers"]["x-ztsoc-reason"] for g in map(grpc_outcome, grpc_lines[-3:]))
    allowed = sum(1 for line in grpc_lines if "ok_response" in line["response"])
    assert 10 < allowed < len(cases) - 10


def test_an_allowed_request_carries_the_identity_upstream(server: Running, client: Path) -> None:
    c = Case("GET", "/records/42", "records", "10.3.4.5", f"Bearer {svid('/ns/portal/sa/web')}")
    body = check_json(c)
    # A client-forged identity header must not survive an allow.
    body["attributes"]["request"]["http"]["headers"]["x-ztsoc-principal"] = "spiffe://gov.example/ns/admin/sa/root"
    g = grpc_outcome(via_grpc(client, server.grpc_port, [body])[0])
    assert g["status"] == 200
    assert g["headers"]["x-ztsoc-principal"] == f"spiffe://{DOMAIN}/ns/portal/sa/web"
    assert g["headers"]["x-ztsoc-decision"] == "allow" and "t/portal-reads" in g["headers"]["x-ztsoc-reason"]
    anonymous = grpc_outcome(via_grpc(client, server.grpc_port, [check_json(
        Case("GET", "/healthz", "records", "10.3.4.5", None))])[0])
    assert anonymous["status"] == 200 and "x-ztsoc-principal" in anonymous["removed"]


def test_a_denial_carries_status_reason_and_body(server: Running, client: Path) -> None:
    c = Case("DELETE", "/records/42", "records", "10.3.4.5", f"Bearer {svid('/ns/portal/sa/web')}")
    g = grpc_outcome(via_grpc(client, server.grpc_port, [check_json(c)])[0])
    assert g["status"] == 403 and g["headers"]["x-ztsoc-decision"] == "deny"
    assert "t/no-delete" in g["headers"]["x-ztsoc-reason"] and g["body"].startswith("denied: ")


def test_a_request_without_attributes_is_denied(server: Running, client: Path) -> None:
    out = via_grpc(client, server.grpc_port, [{}, {"attributes": {"request": {"http": {"method": "GET"}}}}])
    for line in out:
        assert grpc_outcome(line)["status"] in (400, 403)


def test_the_client_is_envoys_own_wire_format(client: Path) -> None:
    """A field ztsoc's subset got wrong would not parse with Envoy's names: the client refuses it."""
    proc = subprocess.run([str(client), "-addr", "127.0.0.1:1", "check"],
                          input=json.dumps({"attributes": {"request": {"http": {"no_such_field": 1}}}}) + "\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no_such_field" in proc.stderr


def test_header_map_repeats_are_kept_and_pseudo_headers_read() -> None:
    check = pb.CheckRequest()
    http = check.attributes.request.http
    for k, v in [(":method", "GET"), (":path", "/records/1?q=2"), (":authority", "records:443"),
                 ("authorization", "Bearer a"), ("Authorization", "Bearer b")]:
        http.header_map.headers.add(key=k, raw_value=v.encode())
    check.attributes.source.address.socket_address.address = "10.0.0.9"
    check.attributes.context_extensions["ztsoc-service"] = "records"
    h = http_request_of_check(check, "ipv6:[::1]:5000")
    assert (h.method, h.target, h.peer, h.reported_source, h.reported_service, h.http_version) == (
        "GET", "/records/1?q=2", "::1", "10.0.0.9", "records", None)
    assert tuple(h.headers) == (("host", "records:443"), ("authorization", "Bearer a"), ("authorization", "Bearer b"))
    assert grpc_peer_address("ipv4:127.0.0.1:9") == "127.0.0.1" and grpc_peer_address("unix:/x") is None


def test_hostile_checks_are_refused_through_the_canonicaliser(server: Running, client: Path) -> None:
    """The gRPC front gets the canonicaliser's refusals, not a decision of its own."""
    base = Case("GET", "/records/1", "records", "10.3.4.5", f"Bearer {svid('/ns/portal/sa/web')}")
    assert grpc_outcome(via_grpc(client, server.grpc_port, [check_json(base)])[0])["status"] == 200
    cases: list[tuple[dict[str, Any], str]] = []
    # Two Authorization headers in Envoy's raw header map: garbage, then a valid token.
    raw = check_json(base)
    http = raw["attributes"]["request"]["http"]
    hm = [{"key": k, "rawValue": base64.b64encode(v.encode()).decode()} for k, v in http.pop("headers").items()]
    hm.append({"key": "authorization", "rawValue": base64.b64encode(b"Bearer garbage").decode()})
    http["headerMap"] = {"headers": [*hm[:-2], hm[-1], hm[-2]]}
    cases.append((raw, "Authorization headers"))
    # Envoy's merged map joins repeats with ",".
    joined = check_json(base)
    joined["attributes"]["request"]["http"]["headers"]["authorization"] = f"Bearer x, {base.authorization}"
    cases.append((joined, "more than one value"))
    for method in ("DELETE ", "delete", "GET\t"):
        cases.append((check_json(Case(method, "/records/1", "records", "10.3.4.5", base.authorization)), "method"))
    for path in ("/records/..%2Fadmin/x", "/admin./x", "/records/\uff0fadmin"):
        cases.append((check_json(Case("GET", path, "records", "10.3.4.5", base.authorization)), "path"))
    out = via_grpc(client, server.grpc_port, [c for c, _ in cases])
    for (c, why), line in zip(cases, out, strict=True):
        g = grpc_outcome(line)
        assert g["status"] in (400, 403) and why in g["headers"]["x-ztsoc-reason"], (c, g)
    # From an address that is not a trusted proxy, the reported client address and service are not believed.
    untrusted = grpc_outcome(via_grpc(client, server.grpc_port, [check_json(base)], source="127.0.0.3")[0])
    assert untrusted["status"] == 403 and "no destination service" in untrusted["headers"]["x-ztsoc-reason"]


def test_the_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    """``envoy_ext_authz_pb2.py`` is generated: regenerating it from the .proto gives the same file."""
    protos = ROOT / "policy" / "protos"
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{protos}", f"--python_out={tmp_path}",
                           f"--pyi_out={tmp_path}", str(protos / "envoy_ext_authz.proto")],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "No module named grpc_tools" in proc.stderr:
        pytest.skip("grpcio-tools (a dev dependency) is not installed")
    assert proc.returncode == 0, proc.stderr
    for name in ("envoy_ext_authz_pb2.py", "envoy_ext_authz_pb2.pyi"):
        assert (tmp_path / name).read_text() == (protos / name).read_text(), f"{name} is stale: regenerate it"


def test_the_istio_example_fits_together() -> None:
    """The shipped Istio manifests name one provider, and its trust file loads as the gRPC front's proxies."""
    import yaml

    from policy.canonical import load_front_config
    from policy.grpc_authz import SERVICE_EXTENSION

    d = ROOT / "policy" / "examples" / "istio"
    mesh = yaml.safe_load((d / "meshconfig.yaml").read_text())
    provider = mesh["spec"]["meshConfig"]["extensionProviders"][0]
    assert provider["envoyExtAuthzGrpc"]["failOpen"] is False
    policy = yaml.safe_load((d / "authorization-policy.yaml").read_text())
    assert policy["spec"]["action"] == "CUSTOM" and policy["spec"]["provider"]["name"] == provider["name"]
    patch = yaml.safe_load((d / "service-envoyfilter.yaml").read_text())["spec"]["configPatches"][0]["patch"]
    ext = patch["value"]["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["check_settings"]
    assert SERVICE_EXTENSION in ext["context_extensions"]
    (proxy,) = load_front_config(d / "trust.yaml").proxies
    assert proxy.client_address == "reported" and proxy.reported_service


# -- issue 13's hostile cases, through the gRPC front ---------------------------------------------
ENVOY = "127.0.0.5"  # the Envoy that calls the gRPC front: the one trusted proxy here


@pytest.fixture(scope="module")
def hostile_grpc() -> Iterator[tuple[int, ListSink]]:
    """The hostile suite's policy, risk and identities, behind the gRPC front alone."""
    import ipaddress

    from test_policy_hostile import HOSTILE
    from test_policy_hostile import POLICY as HOSTILE_POLICY

    from policy.canonical import TrustedProxy
    from policy.request import Risk

    sink = ListSink()
    engine = Engine.from_policy_set(policy_set_from_text(HOSTILE_POLICY, "h.yaml"), verifier=verifier(), sink=sink,
                                    risk=StaticRisk({HOSTILE: Risk(1, "critical", 5)}),
                                    trust_asserted_principal=False)
    envoy = TrustedProxy("envoy", (ipaddress.ip_network(f"{ENVOY}/32"),), client_address="reported",
                         reported_service=True)
    server = GrpcServer(DecisionHandler(engine, front=FrontConfig((envoy,))), "127.0.0.1", 0)
    server.start()
    yield server.port, sink
    server.stop(0)


def test_the_hostile_cases_are_denied_through_grpc_as_through_nginx(hostile_grpc: tuple[int, ListSink],
                                                                     client: Path) -> None:
    """Every case tests/test_policy_hostile.py sends through nginx, as Envoy would send it: same denial, same reason."""
    from test_policy_hostile import HOSTILE_CASES

    port, sink = hostile_grpc
    checks = []
    for _case, method, target, headers, source, _why in HOSTILE_CASES:
        sent = headers() if callable(headers) else headers  # tokens are minted when the test runs
        raw = [(":authority", "records.gov.example"), (":method", method), (":path", target), *sent]
        checks.append({"attributes": {
            "source": {"address": {"socketAddress": {"address": source, "portValue": 50000}}},
            "request": {"http": {"method": method, "path": target, "host": "records.gov.example", "protocol": "HTTP/1.1",
                                 "headerMap": {"headers": [{"key": k.lower(), "rawValue": base64.b64encode(
                                     v.encode()).decode()} for k, v in raw]}}},
            "contextExtensions": {"ztsoc-service": "records"}}})
    out = via_grpc(client, port, checks, source=ENVOY)
    for (case, *_rest, why), line in zip(HOSTILE_CASES, out, strict=True):
        g = grpc_outcome(line)
        assert g["status"] in (400, 403) and g["headers"]["x-ztsoc-decision"] == "deny", case
        assert why in g["headers"]["x-ztsoc-reason"], (case, g["headers"]["x-ztsoc-reason"])
        logged = [d for _, d in sink.seen if d.decision_id == g["headers"]["x-ztsoc-decision-id"]]
        assert len(logged) == 1 and why in logged[0].reason, case
    # The controls: what the hostile suite lets through nginx, the gRPC front lets through.
    from test_policy_hostile import CLEAN, PORTAL

    ok = check_json(Case("POST", "/records/1", "records", CLEAN, f"Bearer {svid('/ns/portal/sa/web')}"))
    g = grpc_outcome(via_grpc(client, port, [ok], source=ENVOY)[0])
    assert g["status"] == 200 and g["headers"]["x-ztsoc-principal"] == PORTAL


# -- TLS and mutual TLS on the gRPC port -------------------------------------------------------
def _cert(subject: str, key: Any, issuer: tuple[Any, Any] | None, *, ca: bool = False, ip: str | None = None) -> Any:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_cert.subject if issuer_cert else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)),
                                                         x509.DNSName("localhost")]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pki(d: Path) -> dict[str, Path]:
    """A CA, the server's certificate (127.0.0.1), a client signed by the CA and one signed by another CA."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def write(name: str, cert: Any, key: Any) -> None:
        (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))

    keys_ = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("ca", "rogue-ca", "server", "envoy", "rogue")}
    ca = _cert("ztsoc test CA", keys_["ca"], None, ca=True)
    rogue_ca = _cert("someone else's CA", keys_["rogue-ca"], None, ca=True)
    write("ca", ca, keys_["ca"])
    write("server", _cert("pdp", keys_["server"], (ca, keys_["ca"]), ip="127.0.0.1"), keys_["server"])
    write("envoy", _cert("envoy", keys_["envoy"], (ca, keys_["ca"])), keys_["envoy"])
    write("rogue", _cert("envoy", keys_["rogue"], (rogue_ca, keys_["rogue-ca"])), keys_["rogue"])
    return {n: d / f"{n}.pem" for n in ("ca", "server", "envoy", "rogue")}


def test_mutual_tls_admits_only_callers_with_a_certificate_from_the_ca(client: Path, tmp_path: Path) -> None:
    from policy.grpc_authz import GrpcTls

    pki = _pki(tmp_path)
    engine = Engine.from_policy_set(policy_set_from_text(POLICY, "t.yaml"), verifier=verifier(), risk=StaticRisk())
    front = FrontConfig(proxies=proxies_from_config([{"name": "envoy", "addresses": ["127.0.0.2/32"],
                                                      "client_address": "reported", "reported_service": True}]))
    tls = GrpcTls(pki["server"], tmp_path / "server.key", client_ca=pki["ca"])
    server = GrpcServer(DecisionHandler(engine, front=front), "127.0.0.1", 0, tls=tls)
    server.start()
    try:
        check = json.dumps(check_json(Case("GET", "/healthz", "records", "10.1.2.3", None))) + "\n"

        def call(*flags: str) -> dict[str, Any]:
            proc = subprocess.run([str(client), "-addr", f"127.0.0.1:{server.port}", "-source", "127.0.0.2",
                                   "-timeout", "3s", *flags, "check"], input=check, capture_output=True, text=True,
                                  timeout=60)
            assert proc.returncode == 0, proc.stderr
            return dict(json.loads(proc.stdout))

        ok = call("-ca", str(pki["ca"]), "-cert", str(pki["envoy"]), "-key", str(tmp_path / "envoy.key"))
        assert grpc_outcome(ok)["status"] == 200
        for flags in ((), ("-ca", str(pki["ca"])),  # plaintext; TLS without a client certificate
                      ("-ca", str(pki["ca"]), "-cert", str(pki["rogue"]), "-key", str(tmp_path / "rogue.key"))):
            refused = call(*flags)
            assert "error" in refused and "response" not in refused, (flags, refused)
    finally:
        server.stop(0)


def test_serve_refuses_half_a_tls_configuration(tmp_path: Path) -> None:
    soc = str(Path(sys.executable).with_name("soc"))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "t.yaml").write_text(POLICY)
    out = subprocess.run([soc, "--store", f"sqlite:///{tmp_path / 's.db'}", "policy", "serve", "-p",
                          str(tmp_path / "p"), "--port", "0", "--grpc-port", "0", "--no-log", "--no-watch",
                          "--grpc-tls-cert", str(tmp_path / "x.pem")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--grpc-tls-key" in out.stderr and "ztsoc PDP" not in out.stderr


# -- the gRPC peer, parsed as the HTTP front's peer is (IPv6 loopback) -----------------------------
def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


PEER_POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: p
rules:
  - name: block-loopback6
    effect: deny
    source: {ip_ranges: ["::1/128"]}
    destination: {services: [records], paths: ["/blocked/**"]}
  - name: loopback6-only
    effect: allow
    source: {ip_ranges: ["::1/128"]}
    destination: {services: [records], methods: [GET], paths: ["/mine/**"]}
  - name: block-v4
    effect: deny
    source: {ip_ranges: ["127.0.0.0/8"]}
    destination: {services: [records], paths: ["/v4/**"]}
  - name: open
    effect: allow
    destination: {services: [records], methods: [GET]}
"""


@pytest.mark.parametrize(("peer", "address"), [
    ("ipv6:%5B::1%5D:40686", "::1"), ("ipv6:[::1]:40686", "::1"), ("ipv6:%5B2001:db8::7%5D:1", "2001:db8::7"),
    ("ipv4:127.0.0.1:9", "127.0.0.1"), ("ipv6:%5B::ffff:127.0.0.1%5D:5", "127.0.0.1"),
    ("unix:/run/envoy.sock", None), ("unix-abstract:x", None), ("ipv6:%5Bfe80::1%25eth0%5D:1", None),
    ("ipv6:%5B::1%5Dx", None), ("junk", None), ("", None),
])
def test_grpc_peers_become_an_address_or_unknown(peer: str, address: str | None) -> None:
    """gRPC percent-encodes the brackets of an IPv6 peer; what is not an address is unknown, never a source.ip."""
    from policy.canonical import canonical_request

    check = pb.CheckRequest()
    check.attributes.request.http.method, check.attributes.request.http.path = "GET", "/x"
    http = http_request_of_check(check, peer)
    assert canonical_request(http, FrontConfig(service="records")).source_ip == address


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_the_fronts_agree_on_address_rules_for_an_ipv6_peer() -> None:
    """A real gRPC server and the raw HTTP front on ::1, one engine: the same rules fire for the same caller."""
    import asyncio

    import grpc

    from policy.canonical import TrustedProxy
    from policy.grpc_authz import CHECK_METHOD

    sink = ListSink()
    engine = Engine.from_policy_set(policy_set_from_text(PEER_POLICY, "p.yaml"), risk=StaticRisk(), sink=sink)
    handler = DecisionHandler(engine, front=FrontConfig(service="records"))
    grpc_server = GrpcServer(handler, "::1", 0)
    # A trusted Envoy on ::1 reporting the client out of band: recognised only if its peer parses.
    envoy6 = TrustedProxy("envoy6", (ipaddress.ip_network("::1/128"),), client_address="reported",
                          reported_service=True)
    proxied = GrpcServer(DecisionHandler(engine, front=FrontConfig((envoy6,))), "::1", 0)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    ports: list[int] = []
    stop = asyncio.Event()

    async def main() -> None:
        srv = await asyncio.get_running_loop().create_server(lambda: _connection(handler), "::1", 0)
        ports.append(srv.sockets[0].getsockname()[1])
        ready.set()
        await stop.wait()
        srv.close()

    def _connection(h: DecisionHandler) -> Any:
        from policy.server import _Connection

        return _Connection(h)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    grpc_server.start()
    proxied.start()
    try:
        def via_grpc6(port: int, path: str, reported: str | None = None) -> tuple[int, str, str, Request]:
            check = pb.CheckRequest()
            h = check.attributes.request.http
            h.method, h.path, h.host = "GET", path, "records"
            if reported is not None:
                check.attributes.source.address.socket_address.address = reported
                check.attributes.context_extensions["ztsoc-service"] = "records"
            with grpc.insecure_channel(f"[::1]:{port}") as ch:
                resp = pb.CheckResponse.FromString(ch.unary_unary(CHECK_METHOD)(check.SerializeToString(),
                                                                                 timeout=10))
            req, d = sink.seen[-1]
            status = 200 if resp.status.code == 0 else resp.denied_response.status.code
            return status, d.reason, d.action, req

        def via_http6(path: str) -> tuple[int, str, str, Request]:
            with socket.create_connection(("::1", ports[0]), timeout=10) as s:
                s.sendall(f"GET /authz{path} HTTP/1.1\r\nHost: records\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            req, d = sink.seen[-1]
            return int(data.split(b" ", 2)[1]), d.reason, d.action, req

        outcomes = set()
        for path in ("/blocked/x", "/mine/x", "/v4/x", "/open/x", "/blocked", "/mine/../blocked/y"):
            g, h = via_grpc6(grpc_server.port, path), via_http6(path)
            assert g[:3] == h[:3], (path, g, h)
            assert g[3].source_ip == h[3].source_ip == "::1"
            assert decision_event(g[3], sink.seen[-1][1])["source.ip"] == "::1"
            outcomes.add(g[1])
        assert any("p/block-loopback6" in r for r in outcomes) and "allowed by p/loopback6-only" in outcomes
        # The trusted proxy on ::1 is recognised: the client it reports is the source.
        status, reason, _, req = via_grpc6(proxied.port, "/blocked/x", reported="192.0.2.9")
        assert (req.source_ip, status, reason) == ("192.0.2.9", 200, "allowed by p/open")
    finally:
        grpc_server.stop(0)
        proxied.stop(0)
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
