"""Policy decision speed: in process at 10, 100 and 1,000 rules, and the HTTP server on loopback.

In process, per size: ztsoc's ``Engine.decide`` with an ES256 JWT-SVID that was verified
before (the verification cache hit every busy caller sees) and with a token never seen
(full signature verification every time), beside ``cedarpy`` (AWS Cedar's Rust engine)
deciding an equivalent Cedar policy set, pre-parsed ``PolicySet``/``Entities`` handles
reused (Cedar's fastest mode), and Cedar re-parsing the policy text per call (the mode
most integrations use). Equivalence is checked, not assumed: every sampled request must get
the same allow/deny from both engines. Targets: p99 <= 100 us with a cached token at 1,000
rules, and >= 2x cedarpy's throughput at every size.

Over HTTP: ``soc policy serve`` (the real command and its default front end, raw asyncio on
httptools: 1,000 rules, ES256 tokens verified once then cached, every decision logged to a
SQLite store, and the log checked for completeness afterwards) under ``wrk`` (or a bounded
asyncio load generator when wrk is not installed), Envoy ext_authz style requests, 8
connections. ``--no-log`` shows the server without the decision log's share of the CPU.
Target: >= 3,000 decisions/s, p99 <= 10 ms, no errors.

    .venv/bin/python bench/policy.py            # short run (a few seconds per measurement)
    .venv/bin/python bench/policy.py --full     # longer runs, 30 s of HTTP load
    .venv/bin/python bench/policy.py --no-http  # in process only
"""
# No `from __future__ import annotations`: `python -m bench` runs this file without registering
# it in sys.modules, and dataclasses must then see real types, not strings.


import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/policy.py: with bench/ on sys.path (as `python bench/policy.py` and
# `python -m bench` put it), `import policy` would find this file instead of the package.
sys.path.insert(0, str(ROOT))
if getattr(sys.modules.get("policy"), "__file__", None) == __file__:
    del sys.modules["policy"]

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from jwt.algorithms import ECAlgorithm  # noqa: E402

from policy.compiler import compile_policy  # noqa: E402
from policy.engine import Engine  # noqa: E402
from policy.identity import KeySet, TokenVerifier, TrustConfig  # noqa: E402
from policy.identity.spiffe import TrustDomainConfig  # noqa: E402
from policy.language import policy_set_from_text  # noqa: E402
from policy.request import Request, Risk  # noqa: E402
from policy.risk import StaticRisk  # noqa: E402

DOMAIN = "bench.example"
AUDIENCE = "ztsoc-pdp"
SIZES = (10, 100, 1000)
TARGET_P99_US = 100.0
TARGET_RATIO = 2.0
TARGET_HTTP_RPS = 3000.0
TARGET_HTTP_P99_MS = 10.0


# -- the equivalent policy sets -------------------------------------------------------------
@dataclass(frozen=True)
class BenchRule:
    index: int
    service: str
    effect: str
    principal: str | None
    methods: tuple[str, ...]
    path_prefix: str | None
    role: str | None


def principal(i: int) -> str:
    return f"spiffe://{DOMAIN}/ns/ns{i % 7}/sa/app{i}"


def make_rules(n: int) -> list[BenchRule]:
    services = max(1, n // 10)
    rules = []
    for i in range(n):
        svc = f"svc-{i % services}"
        if i % 10 == 0:
            rules.append(BenchRule(i, svc, "deny", None, ("DELETE",), None, None))
        else:
            rules.append(BenchRule(i, svc, "allow", principal(i), ("GET", "POST"), f"/api/{i}/",
                                   "reader" if i % 3 == 0 else None))
    return rules


def ztsoc_policy(rules: list[BenchRule]) -> str:
    out = ["apiVersion: ztsoc/v1", "kind: Policy", "name: bench", "rules:"]
    for r in rules:
        out.append(f"  - name: r{r.index}\n    effect: {r.effect}")
        if r.principal:
            out.append(f"    source: {{principals: [\"{r.principal}\"]}}")
        dst = [f"services: [{r.service}]", f"methods: [{', '.join(r.methods)}]"]
        if r.path_prefix:
            dst.append(f"paths: [\"{r.path_prefix}**\"]")
        out.append(f"    destination: {{{', '.join(dst)}}}")
        if r.role:
            out.append(f"    when: {{claims: {{roles: {{any: [{r.role}]}}}}}}")
    return "\n".join(out) + "\n"


def cedar_policy(rules: list[BenchRule]) -> str:
    out = []
    for r in rules:
        who = f'principal == User::"{r.principal}"' if r.principal else "principal"
        acts = ", ".join(f'Action::"{m}"' for m in r.methods)
        cond = [f'context.service == "{r.service}"']
        if r.path_prefix:
            cond.append(f'context.path like "{r.path_prefix}*"')
        if r.role:
            cond.append(f'context.roles.contains("{r.role}")')
        verb = "permit" if r.effect == "allow" else "forbid"
        out.append(f'{verb}({who}, action in [{acts}], resource) when {{ {" && ".join(cond)} }};')
    return "\n".join(out)


@dataclass(frozen=True)
class Sample:
    principal: str
    service: str
    method: str
    path: str
    roles: tuple[str, ...]


def make_samples(rules: list[BenchRule], count: int, seed: int = 7) -> list[Sample]:
    rnd = random.Random(seed)
    allows = [r for r in rules if r.effect == "allow"]
    out = []
    for _ in range(count):
        r = rnd.choice(allows)
        roll = rnd.random()
        roles = ("reader",) if (r.role and roll > 0.1) else ()
        method = "DELETE" if roll < 0.05 else rnd.choice(r.methods)
        path = f"{r.path_prefix}items/{rnd.randrange(1000)}" if roll < 0.9 else f"/other/{rnd.randrange(9)}"
        out.append(Sample(r.principal or "", r.service, method, path, roles))
    return out


# -- tokens ---------------------------------------------------------------------------------
class Signer:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.alg = ECAlgorithm(ECAlgorithm.SHA256)
        jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        jwk["kid"] = "bench1"
        self.jwks = {"keys": [jwk]}
        self.n = 0

    def token(self, sub: str, roles: tuple[str, ...]) -> str:
        import base64

        def b64(b: bytes) -> str:
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        self.n += 1
        now = int(time.time())
        header = b64(json.dumps({"alg": "ES256", "kid": "bench1", "typ": "JWT"}).encode())
        body = b64(json.dumps({"sub": sub, "aud": AUDIENCE, "exp": now + 3600, "iat": now, "jti": str(self.n),
                               "roles": list(roles)}).encode())
        sig = self.alg.sign(f"{header}.{body}".encode(), self.key)
        return f"{header}.{body}.{b64(sig)}"

    def trust(self) -> TrustConfig:
        cfg = TrustConfig()
        cfg.domains[DOMAIN] = TrustDomainConfig(DOMAIN, KeySet(name=DOMAIN, jwks=self.jwks), audience=AUDIENCE)
        return cfg


# -- measuring ------------------------------------------------------------------------------
@dataclass
class Stats:
    name: str
    n: int
    per_s: float
    p50_us: float
    p99_us: float


def measure(name: str, fn: Callable[[int], object], n: int) -> Stats:
    times = []
    clock = time.perf_counter_ns
    for i in range(min(200, n)):  # warm up
        fn(i)
    started = clock()
    for i in range(n):
        t0 = clock()
        fn(i)
        times.append(clock() - t0)
    total = (clock() - started) / 1e9
    times.sort()
    return Stats(name, n, n / total, times[len(times) // 2] / 1000, times[min(len(times) - 1, int(len(times) * 0.99))] / 1000)


def run_size(n_rules: int, args: argparse.Namespace, signer: Signer) -> tuple[list[Stats], bool, float]:
    import cedarpy

    rules = make_rules(n_rules)
    samples = make_samples(rules, 2000)
    engine = Engine(compile_policy(policy_set_from_text(ztsoc_policy(rules))), verifier=TokenVerifier(signer.trust()),
                    risk=StaticRisk())
    cedar_text = cedar_policy(rules)
    policyset = cedarpy.PolicySet.from_str(cedar_text)
    entities: Any = cedarpy.Entities.from_json_str("[]")

    cached = {s.principal + "|" + ",".join(s.roles): signer.token(s.principal, s.roles) for s in samples}
    cached_tokens = [cached[s.principal + "|" + ",".join(s.roles)] for s in samples]
    n_fresh = args.fresh
    fresh_tokens = [signer.token(samples[i % len(samples)].principal, samples[i % len(samples)].roles)
                    for i in range(n_fresh + 200)]
    cedar_reqs = [{"principal": f'User::"{s.principal}"', "action": f'Action::"{s.method}"',
                   "resource": 'Resource::"r"', "context": {"service": s.service, "path": s.path,
                                                             "roles": list(s.roles)}} for s in samples]

    def ztsoc_cached(i: int) -> bool:
        s = samples[i % len(samples)]
        return engine.decide(Request(s.service, s.method, s.path, token=cached_tokens[i % len(samples)],
                                     source_ip="10.0.0.1")).allow

    def ztsoc_fresh(i: int) -> bool:
        s = samples[i % len(samples)]
        return engine.decide(Request(s.service, s.method, s.path, token=fresh_tokens[i], source_ip="10.0.0.1")).allow

    def cedar_handles(i: int) -> bool:
        return cedarpy.is_authorized(cedar_reqs[i % len(samples)], policyset, entities).allowed

    def cedar_text_mode(i: int) -> bool:
        return cedarpy.is_authorized(cedar_reqs[i % len(samples)], cedar_text, []).allowed

    # Equivalence: both engines give the same answer on every sample.
    for i in range(len(samples)):
        ztsoc_cached(i)  # fills the verification cache
    agree = sum(ztsoc_cached(i) == cedar_handles(i) for i in range(len(samples)))
    allowed = sum(ztsoc_cached(i) for i in range(len(samples)))
    n = args.iterations
    n_cedar = n if n_rules < 1000 else max(2000, n // 5)
    stats = [
        measure("ztsoc, cached token", ztsoc_cached, n),
        measure("ztsoc, fresh ES256 token", ztsoc_fresh, n_fresh),
        measure("cedarpy, pre-parsed handles", cedar_handles, n_cedar),
        measure("cedarpy, policy text per call", cedar_text_mode, max(200, n_cedar // (10 if n_rules >= 1000 else 2))),
    ]
    return stats, agree == len(samples), allowed / len(samples)


# -- HTTP -----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, timeout: float = 30.0) -> bool:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _warm_up(port: int, requests: list[tuple[str, str, str]]) -> None:
    """One pass over the tokens first: the HTTP run measures the steady state (verified tokens
    cached, as for a busy mesh); fresh verification is measured in process above."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for service, path, token in requests:
        conn.request("GET", f"/authz{path}", headers={"x-ztsoc-service": service, "authorization": f"Bearer {token}"})
        conn.getresponse().read()
    conn.close()


def _wrk(port: int, requests: list[tuple[str, str, str]], seconds: int, connections: int) -> dict[str, float] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    lua = ["local reqs = {}"]
    for i, (service, path, token) in enumerate(requests):
        lua.append(f'reqs[{i + 1}] = wrk.format("GET", "/authz{path}", {{["x-ztsoc-service"]="{service}", '
                   f'["authorization"]="Bearer {token}", ["x-forwarded-for"]="10.0.0.1"}})')
    lua += ["local n = 0", "request = function()", f"  n = n % {len(requests)} + 1", "  return reqs[n]", "end"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write("\n".join(lua))
        script = fh.name
    try:
        out = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script)

    def latency(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0, "p50_ms": latency("50"), "p99_ms": latency("99"),
        "errors": float(sum(map(int, errors.groups()))) if errors else 0.0,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0, "requests": float(total.group(1)) if total else 0.0,
    }


async def _pyload(port: int, requests: list[tuple[str, str, str]], seconds: float, connections: int) -> dict[str, float]:
    """Bounded keep-alive HTTP/1.1 load: ``connections`` clients, each one request in flight."""
    lat: list[float] = []
    errors = 0
    non2xx = 0
    stop = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal errors, non2xx
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        while time.monotonic() < stop:
            service, path, token = requests[i % len(requests)]
            i += connections
            raw = (f"GET /authz{path} HTTP/1.1\r\nHost: x\r\nx-ztsoc-service: {service}\r\n"
                   f"authorization: Bearer {token}\r\nx-forwarded-for: 10.0.0.1\r\n\r\n").encode()
            t0 = time.perf_counter()
            try:
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                if length:
                    await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, AttributeError):
                errors += 1
                return
            lat.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 2"):
                non2xx += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client(k) for k in range(connections)))
    elapsed = time.monotonic() - started
    lat.sort()
    return {"rps": len(lat) / elapsed, "p50_ms": lat[len(lat) // 2] * 1000 if lat else float("nan"),
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan"), "errors": float(errors),
            "non2xx": float(non2xx), "requests": float(len(lat))}


def run_http(args: argparse.Namespace, signer: Signer) -> tuple[dict[str, float], str]:
    rules = make_rules(1000)
    # Requests the policy allows (checked in process), so every non-2xx answer is a fault.
    check = Engine(compile_policy(policy_set_from_text(ztsoc_policy(rules))), risk=StaticRisk())
    samples = [s for s in make_samples(rules, 400, seed=11) if check.decide(Request(
        s.service, s.method, s.path, principal=s.principal, roles=frozenset(s.roles), risk=Risk())).allow]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "policies").mkdir()
        (d / "policies" / "bench.yaml").write_text(ztsoc_policy(rules))
        (d / "bundle.json").write_text(json.dumps(signer.jwks))
        (d / "trust.yaml").write_text(f"spiffe:\n  - trust_domain: {DOMAIN}\n    audience: {AUDIENCE}\n"
                                      f"    jwks_file: bundle.json\n"
                                      # the load generator plays the proxy that names the service
                                      "proxies:\n  - name: bench\n    addresses: [127.0.0.1/32]\n"
                                      "    service_header: x-ztsoc-service\n")
        port = _free_port()
        soc = str(Path(sys.executable).with_name("soc"))
        cmd = [soc, "--store", f"sqlite:///{d / 'soc.db'}", "policy", "serve", "-p", str(d / "policies"),
               "--trust", str(d / "trust.yaml"), "--port", str(port), "--authz-prefix", "/authz",
               "--spill", str(d / "spill.jsonl"), "--workers", str(args.workers), "--no-watch",
               *([] if args.log else ["--no-log"])]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            if not _wait_ready(port):
                raise RuntimeError(f"server did not start: {server.stderr.read() if server.stderr else ''}")
            reqs = [(s.service, s.path, signer.token(s.principal, s.roles)) for s in samples]
            _warm_up(port, reqs)
            result = _wrk(port, reqs, args.http_seconds, args.connections)
            tool = f"wrk -t2 -c{args.connections} -d{args.http_seconds}s"
            if result is None or args.pyload:
                result = asyncio.run(_pyload(port, reqs, args.http_seconds, args.connections))
                tool = f"python asyncio load, {args.connections} connections, {args.http_seconds}s"
            result["warmup"] = float(len(reqs))
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        from eventstore import open_store

        store = open_store(f"sqlite:///{d / 'soc.db'}")
        result["logged"] = float(store.count('event.dataset:"policy.decision"'))
        store.close()
        result["spilled"] = float(sum(sum(1 for _ in f.open()) for f in d.glob("spill.jsonl*")))
    return result, tool


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="more iterations and 30 s of HTTP load")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--pyload", action="store_true", help="use the Python load generator even if wrk exists")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--no-log", dest="log", action="store_false", help="HTTP run without decision logging")
    ap.add_argument("--workers", type=int, default=1, help="server processes for the HTTP run")
    args = ap.parse_args(argv)
    args.iterations = 100_000 if args.full else 20_000
    args.fresh = 5_000 if args.full else 1_500
    args.http_seconds = 30 if args.full else 8

    signer = Signer()
    ok = True
    print(f"load average before the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
          "(other processes' load shows up in the tail latencies)")
    print(f"{'rules':>5}  {'engine':32} {'decisions/s':>12} {'p50 us':>9} {'p99 us':>9}")
    for size in SIZES:
        stats, equivalent, allowed = run_size(size, args, signer)
        for s in stats:
            print(f"{size:>5}  {s.name:32} {s.per_s:>12,.0f} {s.p50_us:>9.1f} {s.p99_us:>9.1f}")
        z, c = stats[0], stats[2]
        ratio = z.per_s / c.per_s
        verdict = []
        if not equivalent:
            verdict.append("NOT EQUIVALENT")
            ok = False
        if ratio < TARGET_RATIO:
            verdict.append(f"below {TARGET_RATIO}x cedarpy")
            ok = False
        if size == 1000 and z.p99_us > TARGET_P99_US:
            verdict.append(f"p99 over {TARGET_P99_US:.0f} us")
            ok = False
        print(f"{size:>5}  -> ztsoc cached / cedarpy handles = {ratio:.1f}x; same decisions on all 2,000 samples: "
              f"{equivalent} ({allowed:.0%} allowed){'; MISSED: ' + ', '.join(verdict) if verdict else ''}")
    if not args.no_http:
        r, tool = run_http(args, signer)
        logged = "decisions logged" if args.log else "no decision log"
        print(f"HTTP ext_authz, {args.workers} worker(s), 1,000 rules, ES256 tokens, {logged} ({tool}): "
              f"{r['rps']:,.0f} decisions/s, "
              f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']:.0f}, non-2xx {r['non2xx']:.0f}, "
              f"logged {r['logged']:,.0f} (wrk completed {r['requests']:,.0f}, plus {r['warmup']:,.0f} warm-up), "
              f"spilled {r['spilled']:,.0f}")
        missed = []
        if r["rps"] < TARGET_HTTP_RPS:
            missed.append(f"throughput under {TARGET_HTTP_RPS:,.0f}/s")
        if r["p99_ms"] > TARGET_HTTP_P99_MS:
            missed.append(f"p99 over {TARGET_HTTP_P99_MS:g} ms")
        if r["errors"] or r["non2xx"]:
            missed.append("errors")
        if args.log and r["logged"] + r["spilled"] < r["requests"] + r["warmup"]:
            missed.append("decisions missing from the log")
        if missed:
            print(f"MISSED: {', '.join(missed)}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
