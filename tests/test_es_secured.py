"""A secured Elasticsearch: TLS with a private CA, basic auth and API keys, through real nginx.

The minimal distribution has no security module, so Debian's nginx stands in for the
secured node: it terminates TLS with a certificate from a CA made here (``cryptography``)
and authenticates before proxying to the test node. One server checks basic auth
(``auth_basic`` over an ``{SSHA}`` password file), another an ``Authorization: ApiKey``
header, as Elastic's own security does. What is proven: the store URL and the environment
variables the README documents (``SOC_ES_CA``, ``SOC_ES_USER``/``SOC_ES_PASSWORD``,
``SOC_ES_API_KEY``) get a real ``soc`` process through, and every refusal (unknown CA,
wrong password, no or wrong key) is one line naming the cause.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ES_URL, es_store_url
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eventstore.errors import StoreUnavailable
from eventstore.es_store import ElasticsearchStore

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = [pytest.mark.es,
              pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx not installed (scripts/system-deps.sh)")]
SOC = Path(sys.executable).with_name("soc")
USER, PASSWORD = "analyst", "s3cret:with%odd chars"
KEY_ID, KEY_SECRET = "VuaCfGcBCdbkQm-e5aOx", "ui2lp2axTNmsyakw9tvNnw"
API_KEY = base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()


@dataclass(frozen=True)
class Secured:
    basic_port: int
    key_port: int
    ca: Path  # the CA that signed nginx's certificate
    other_ca: Path  # a CA nobody used


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ca(directory: Path, common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    (directory / f"{common}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _server_cert(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("es.test")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _ssha(password: str) -> str:
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def _nginx_conf(prefix: Path, upstream: str, basic_port: int, key_port: int) -> str:
    tls = (f"ssl_certificate {prefix / 'server.pem'}; ssl_certificate_key {prefix / 'server.key'};\n"
           "    ssl_protocols TLSv1.2 TLSv1.3;\n")
    proxy = f"location / {{ proxy_pass {upstream}; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}"
    return (("user root;\n" if os.geteuid() == 0 else "")
            + f"worker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"  access_log off; client_body_temp_path {prefix / 'body'}; proxy_temp_path {prefix / 'proxy'};\n"
            f"  fastcgi_temp_path {prefix / 'fcgi'}; uwsgi_temp_path {prefix / 'uwsgi'}; scgi_temp_path {prefix / 'scgi'};\n"
            "  client_max_body_size 100m; map_hash_bucket_size 128;\n"
            f"  map $http_authorization $api_key_ok {{ default 0; \"ApiKey {API_KEY}\" 1; }}\n"
            f"  server {{ listen 127.0.0.1:{basic_port} ssl; {tls}"
            f"    auth_basic \"elasticsearch\"; auth_basic_user_file {prefix / 'users'};\n    {proxy} }}\n"
            f"  server {{ listen 127.0.0.1:{key_port} ssl; {tls}"
            "    if ($api_key_ok = 0) { return 401 '{\"error\":{\"type\":\"security_exception\"}}'; }\n"
            f"    {proxy} }}\n"
            "}\n")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    if not ES_URL:
        pytest.skip("SOC_TEST_ES_URL is not set: run `make test` (it starts Elasticsearch) or `make es-up`")
    prefix = tmp_path_factory.mktemp("nginx")
    ca_key, ca = _ca(prefix, "ztsoc-test-ca")
    _ca(prefix, "unrelated-ca")
    _server_cert(prefix, ca_key, ca)
    (prefix / "users").write_text(f"{USER}:{_ssha(PASSWORD)}\n")
    basic_port, key_port = _free_port(), _free_port()
    node = urlsplit(ES_URL)
    (prefix / "nginx.conf").write_text(_nginx_conf(prefix, f"http://{node.netloc}", basic_port, key_port))
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", key_port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = prefix / "error.log"
                    why = log.read_text(errors="replace") if log.exists() else proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"nginx did not start: {why}") from None
                time.sleep(0.1)
        yield Secured(basic_port, key_port, prefix / "ztsoc-test-ca.pem", prefix / "unrelated-ca.pem")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("SOC_ES_USER", "SOC_ES_PASSWORD", "SOC_ES_API_KEY", "SOC_ES_CA"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def prefix(secured: Secured) -> Iterator[str]:
    """One store for the module, made directly on the node (making indices is the slow part)."""
    direct = ElasticsearchStore.from_url(es_store_url())
    direct.init()
    direct.write_events([{"@timestamp": "2026-01-02T03:04:05.000Z", "event.id": "direct", "host.name": "ws-00"}])
    try:
        yield direct.prefix
    finally:
        direct.drop()
        direct.close()


def _use(url: str) -> None:
    """Open, write, read back through the proxy."""
    store = ElasticsearchStore.from_url(url)
    ident = f"tls-{time.monotonic_ns()}"
    try:
        store.init()
        event = {"@timestamp": "2026-01-02T03:04:05.000Z", "event.id": ident, "host.name": "ws-01"}
        assert store.write_events([event]).written == 1
        assert store.count(f"event.id:{ident}") == 1
        assert store.get_event("direct") is not None
    finally:
        store.close()


def test_basic_auth_and_ca_file_from_the_environment(secured: Secured, clean_env: pytest.MonkeyPatch, prefix: str) -> None:
    clean_env.setenv("SOC_ES_CA", str(secured.ca))
    clean_env.setenv("SOC_ES_USER", USER)
    clean_env.setenv("SOC_ES_PASSWORD", PASSWORD)
    _use(f"https://127.0.0.1:{secured.basic_port}/?prefix={prefix}")


def test_basic_auth_in_the_url_percent_encoded(secured: Secured, clean_env: pytest.MonkeyPatch, prefix: str) -> None:
    from urllib.parse import quote
    clean_env.setenv("SOC_ES_CA", str(secured.ca))
    _use(f"https://{USER}:{quote(PASSWORD, safe='')}@localhost:{secured.basic_port}/?prefix={prefix}")


@pytest.mark.parametrize("key", [API_KEY, f"{KEY_ID}:{KEY_SECRET}"], ids=["encoded", "id:key"])
def test_api_key_from_the_environment(secured: Secured, clean_env: pytest.MonkeyPatch, key: str, prefix: str) -> None:
    clean_env.setenv("SOC_ES_CA", str(secured.ca))
    clean_env.setenv("SOC_ES_API_KEY", key)
    _use(f"https://127.0.0.1:{secured.key_port}/?prefix={prefix}")


@pytest.mark.parametrize(("setting", "expected"), [
    ({"SOC_ES_USER": USER, "SOC_ES_PASSWORD": "wrong"}, "refused the credentials (401)"),
    ({}, "refused the credentials (401)"),
    ({"SOC_ES_API_KEY": base64.b64encode(b"id:wrong").decode()}, "refused the credentials (401)"),
])
def test_refused_credentials_are_one_line(secured: Secured, clean_env: pytest.MonkeyPatch,
                                          setting: dict[str, str], expected: str) -> None:
    clean_env.setenv("SOC_ES_CA", str(secured.ca))
    for name, value in setting.items():
        clean_env.setenv(name, value)
    port = secured.key_port if "SOC_ES_API_KEY" in setting else secured.basic_port
    store = ElasticsearchStore.from_url(f"https://127.0.0.1:{port}/?prefix=x")
    with pytest.raises(StoreUnavailable, match=expected.replace("(", r"\(").replace(")", r"\)")) as info:
        store.init()
    assert "\n" not in str(info.value) and PASSWORD not in str(info.value)
    store.close()


@pytest.mark.parametrize("ca", ["other", "none"])
def test_a_certificate_from_an_unknown_ca_is_refused(secured: Secured, clean_env: pytest.MonkeyPatch,
                                                     ca: str) -> None:
    if ca == "other":
        clean_env.setenv("SOC_ES_CA", str(secured.other_ca))
    clean_env.setenv("SOC_ES_API_KEY", API_KEY)
    store = ElasticsearchStore.from_url(f"https://127.0.0.1:{secured.key_port}/?prefix=x")
    with pytest.raises(StoreUnavailable, match="certificate verify failed") as info:
        store.init()
    assert "\n" not in str(info.value)
    store.close()


def test_the_cli_reaches_a_secured_node_with_the_documented_variables(secured: Secured, prefix: str) -> None:
    url = f"https://127.0.0.1:{secured.key_port}/?prefix={prefix}"
    env = {**os.environ, "SOC_STORE": url, "SOC_ES_CA": str(secured.ca), "SOC_ES_API_KEY": API_KEY}
    done = subprocess.run([str(SOC), "store", "status"], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "elasticsearch" in done.stdout and f"127.0.0.1:{secured.key_port}" in done.stdout
    env.pop("SOC_ES_API_KEY")
    refused = subprocess.run([str(SOC), "store", "status"], env=env, capture_output=True, text=True, timeout=120,
                             check=False)
    assert refused.returncode != 0
    assert "refused the credentials (401)" in refused.stderr and refused.stderr.count("\n") == 1
