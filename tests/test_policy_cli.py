"""``soc policy ...`` through Typer's CliRunner, and ``soc policy serve`` as a real process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eventstore import Store, open_store
from soc_cli import output
from soc_cli.context import STATE
from soc_cli.main import app

EXAMPLES = Path(__file__).resolve().parents[1] / "policy" / "examples"
Run = Callable[..., Any]


@pytest.fixture
def soc(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    monkeypatch.delenv("SOC_STORE", raising=False)
    monkeypatch.setattr(output.console, "width", 250)
    runner = CliRunner()
    STATE._store, STATE.store_url = sqlite_store, sqlite_store.url

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input)

    yield run
    STATE._store, STATE.store_url = None, None


def test_test_and_lint_examples(soc: Run) -> None:
    r = soc("policy", "test", str(EXAMPLES / "tests.yaml"))
    assert r.exit_code == 0, r.output
    assert "25/25 passed" in r.output
    r = soc("policy", "lint", str(EXAMPLES))
    assert r.exit_code == 0 and "no problems found" in r.output


def test_lint_error_exits_1_with_file_and_line(soc: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: ztsoc/v1\nkind: Policy\nname: x\nrules:\n  - name: a\n    effect: maybe\n")
    r = soc("policy", "lint", str(bad), "--json")
    assert r.exit_code == 1
    rows = json.loads(r.output)
    assert rows[0]["file"] == str(bad) and rows[0]["line"] == 6 and rows[0]["severity"] == "error"


def test_failing_case_exits_1(soc: Run, tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(f"policies: {EXAMPLES}\ncases:\n  - name: wrong\n    request: {{service: idp, method: GET, "
                     f"path: /jwks.json}}\n    expect: deny\n")
    r = soc("policy", "test", str(cases), "--json")
    assert r.exit_code == 1
    problem = json.loads(r.output)[0]["problem"]
    assert problem.startswith("expected deny, got allow: allowed by identity-provider/discovery-and-keys")
    r = soc("policy", "test", str(cases), "--coverage")
    assert r.exit_code == 1 and "no case matched:" in r.output and "records/no-deletes" in r.output


def test_no_store_risk_decides_as_policy_test_does(soc: Run, tmp_path: Path) -> None:
    """One missing-risk rule: without store risk the caller has no open alerts, as in ``soc policy test``."""
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"service": "citizen-portal", "method": "GET", "path": "/", "principal": "r-1"}))
    r = soc("policy", "decide", str(req), "-p", str(EXAMPLES), "--no-store-risk")
    assert r.exit_code == 0 and json.loads(r.output)[0]["allow"] is True, r.output
    r = soc("policy", "explain", str(req), "-p", str(EXAMPLES), "--no-store-risk")
    assert r.exit_code == 0 and r.output.startswith("ALLOW"), r.output
    cases = tmp_path / "cases.yaml"
    cases.write_text(f"policies: {EXAMPLES}\ncases:\n  - name: same\n    request: {req.read_text()}\n"
                     "    expect: allow\n")
    assert soc("policy", "test", str(cases)).exit_code == 0


def test_lint_piped_prints_one_line_per_finding(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: ztsoc/v1\nkind: Policy\nname: x\nrules:\n  - name: office-hours-for-the-clerks\n"
                   "    effect: allow\n    destination: {services: [records], methods: [GETT]}\n"
                   "    when: {time: {from: 9am, to: '17:00'}}\n")
    soc = str(Path(sys.executable).with_name("soc"))
    out = subprocess.run([soc, "policy", "lint", str(bad)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "80"})
    lines = out.stdout.splitlines()
    assert out.returncode == 1 and len(lines) == 2, out.stdout
    assert all(line.startswith(f"{bad}:") for line in lines)
    assert any("use HH:MM" in line for line in lines)


def test_decide_explain_and_log(soc: Run, sqlite_store: Store, tmp_path: Path) -> None:
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"service": "records", "method": "DELETE", "path": "/records/citizens/1",
                               "principal": "registrar-2", "roles": ["registrar"]}))
    r = soc("policy", "decide", str(req), "-p", str(EXAMPLES), "--log")
    assert r.exit_code == 1, r.output
    out = json.loads(r.output)[0]
    assert out["allow"] is False and out["rules"] == ["records/no-deletes"]
    logged = sqlite_store.get_event(out["decision_id"])
    assert logged is not None and logged["event.action"] == "deny" and logged["user.name"] == "registrar-2"
    r = soc("policy", "explain", str(req), "-p", str(EXAMPLES), "--json")
    assert r.exit_code == 0
    ex = json.loads(r.output)[0]
    assert {t["rule"]: t["matched"] for t in ex["rules"]}["records/no-deletes"] is True
    r = soc("policy", "decide", "-", "-p", str(EXAMPLES), input='{"service": "idp", "method": "GET", "path": "/jwks.json"}')
    assert r.exit_code == 0 and json.loads(r.output)[0]["allow"] is True


def test_diff_and_whatif(soc: Run, tmp_path: Path) -> None:
    new = tmp_path / "new"
    new.mkdir()
    for f in EXAMPLES.glob("*.yaml"):
        (new / f.name).write_text(f.read_text().replace("paths: [\"/.well-known/**\", \"/jwks.json\"]",
                                                        "paths: [\"/.well-known/**\"]"))
    r = soc("policy", "diff", "-a", str(EXAMPLES), "-b", str(new), "--json")
    assert r.exit_code == 0
    assert json.loads(r.output)[0]["rule"] == "identity-provider/discovery-and-keys"
    req = tmp_path / "req.json"
    req.write_text('{"service": "idp", "method": "GET", "path": "/jwks.json"}')
    assert soc("policy", "decide", str(req), "-p", str(EXAMPLES), "--log").exit_code == 0
    r = soc("policy", "whatif", str(new), "--since", "1h", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [(x["url.path"], x["old"], x["new"]) for x in rows] == [("/jwks.json", "allow", "deny")]


def test_bad_request_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "req.json"
    bad.write_text("{nope")
    proc = subprocess.run([sys.executable, "-m", "soc_cli.main", "policy", "decide", str(bad), "-p", str(EXAMPLES),
                           "--no-store-risk"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not JSON" in proc.stderr and "Traceback" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_process_logs_every_decision_and_reloads(tmp_path: Path) -> None:
    pol = tmp_path / "policies"
    pol.mkdir()
    for f in EXAMPLES.glob("*.yaml"):
        (pol / f.name).write_text(f.read_text())
    db = tmp_path / "soc.db"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "soc_cli.main", "--store", f"sqlite:///{db}", "policy", "serve", "-p", str(pol),
         "--port", str(port), "--spill", str(tmp_path / "spill.jsonl")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def get(method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()

    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert get("GET", "/healthz")[0] == 200
        decide = '{"service": "idp", "method": "GET", "path": "/jwks.json"}'
        ids = [json.loads(get("POST", "/v1/decide", decide)[1])["decision_id"] for _ in range(40)]
        # Hot reload: close the key set to everyone; a broken file afterwards is refused, old policy stays.
        idp = pol / "identity-provider.yaml"
        idp.write_text(idp.read_text().replace("\"/.well-known/**\", \"/jwks.json\"", "\"/.well-known/**\""))
        deadline = time.monotonic() + 10
        while json.loads(get("POST", "/v1/decide", decide)[1])["allow"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert json.loads(get("POST", "/v1/decide", decide)[1])["allow"] is False
        idp.write_text("kind: Policy\nrules: [")
        deadline = time.monotonic() + 30  # the reload poll runs on its own clock: wait for it, not a fixed time
        while json.loads(get("GET", "/readyz")[1])["last_reload_ok"] is not False and time.monotonic() < deadline:
            time.sleep(0.1)
        _, body = get("GET", "/readyz")
        assert json.loads(body)["last_reload_ok"] is False
        assert json.loads(get("POST", "/v1/decide", decide)[1])["allow"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    store = open_store(f"sqlite:///{db}")
    try:
        logged = {d["event.id"] for d in store.scan('event.dataset:"policy.decision"')}
    finally:
        store.close()
    assert set(ids) <= logged


def test_exit_codes_as_a_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: ztsoc/v1\nkind: Policy\nname: x\nrules:\n  - name: a\n    effect: maybe\n")

    def soc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "soc_cli.main", "policy", *args], capture_output=True, text=True,
                              timeout=60)

    lint = soc("lint", str(bad))
    assert lint.returncode == 1 and f"{bad}:6" in lint.stdout
    assert soc("lint", str(EXAMPLES)).returncode == 0
    assert soc("test", str(EXAMPLES / "tests.yaml")).returncode == 0
    assert soc("test", str(bad)).returncode == 2


def test_schema_is_published_and_validates_the_examples(soc: Run) -> None:
    import yaml
    from jsonschema import Draft202012Validator

    r = soc("policy", "schema")
    assert r.exit_code == 0
    validator = Draft202012Validator(json.loads(r.output))
    for f in EXAMPLES.glob("*.yaml"):
        doc = yaml.safe_load(f.read_text())
        if doc.get("kind") == "Policy":
            assert list(validator.iter_errors(doc)) == [], f


def test_serve_with_two_workers_loses_no_decision(tmp_path: Path) -> None:
    db = tmp_path / "soc.db"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "soc_cli.main", "--store", f"sqlite:///{db}", "policy", "serve", "-p", str(EXAMPLES),
         "--port", str(port), "--spill", str(tmp_path / "spill.jsonl"), "--workers", "2", "--no-watch"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ids = []
    try:
        deadline = time.monotonic() + 60
        body = '{"service": "idp", "method": "GET", "path": "/jwks.json"}'
        while time.monotonic() < deadline and len(ids) < 60:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/v1/decide", body=body)
                ids.append(json.loads(conn.getresponse().read())["decision_id"])
                conn.close()
            except OSError:
                time.sleep(0.2)
        assert len(ids) == 60
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    store = open_store(f"sqlite:///{db}")
    try:
        logged = {d["event.id"] for d in store.scan('event.dataset:"policy.decision"')}
    finally:
        store.close()
    assert set(ids) <= logged


def test_serve_errors_print_before_any_banner(tmp_path: Path) -> None:
    """A trust file that does not load, or a port in use, is the only thing printed: no "ztsoc PDP" line first."""
    soc = str(Path(sys.executable).with_name("soc"))
    bad = tmp_path / "trust.yaml"
    bad.write_text("spiffe:\n  - trust_domain: x.example\n    audience: a\n    jwks_file: missing.json\n")
    base = [soc, "--store", f"sqlite:///{tmp_path / 's.db'}", "policy", "serve", "-p", str(EXAMPLES), "--no-log",
            "--no-watch"]
    for extra in ([], ["--workers", "2"], ["--grpc-port", "0"]):
        out = subprocess.run([*base, "--trust", str(bad), "--port", "0", *extra], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 2 and "cannot load keys" in out.stderr and "ztsoc PDP" not in out.stderr, out.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([*base, "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "ztsoc PDP" not in out.stderr, out.stderr


def test_readme_admin_examples_run_as_written(soc: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """diff OLD NEW, the shipped request.json, keys + token + --trust, as the README writes them."""
    root = EXAMPLES.parents[1]
    monkeypatch.chdir(root)
    r = soc("policy", "explain", "policy/examples/request.json", "--policy", "policy/examples", "--no-store-risk")
    assert r.exit_code == 0 and r.output.startswith("DENY") and "payments/refunds-need-two-roles" in r.output
    cand = tmp_path / "candidate"
    import shutil

    shutil.copytree(EXAMPLES, cand)
    page = cand / "citizen-portal.yaml"
    page.write_text(page.read_text().replace("methods: [GET, HEAD]", "methods: [GET, HEAD, OPTIONS]", 1))
    r = soc("policy", "diff", "policy/examples", str(cand))
    assert r.exit_code == 0 and "citizen-portal/public-pages" in r.output and "OPTIONS" in r.output, r.output
    r = soc("policy", "diff", "policy/examples")  # main() turns the ValueError into "error: ..." and exit 2
    assert isinstance(r.exception, ValueError) and "OLD NEW" in str(r.exception)
    keys = tmp_path / "ztsoc-keys"
    assert soc("policy", "keys", str(keys)).exit_code == 0
    r = soc("policy", "token", str(keys), "--sub", "spiffe://province.example/ns/portal/sa/citizen-portal",
            "--scope", "payments:write")
    assert r.exit_code == 0
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"service": "payments", "method": "POST", "path": "/payments/charges",
                               "token": r.output.strip()}))
    r = soc("policy", "decide", str(req), "--policy", "policy/examples", "--trust", str(keys / "trust.yaml"),
            "--no-store-risk")
    assert r.exit_code == 0 and json.loads(r.output)[0]["rules"] == ["payments/portal-charges-fees"], r.output
