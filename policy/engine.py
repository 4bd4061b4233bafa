"""The decision point: ``Engine.decide(request) -> Decision``, fail-closed, hot-reloadable.

Order of a decision: required attributes present; the token (if any) verified, and the
identity taken from it alone; the destination's rule bucket; the source's risk from the
snapshot (only when a rule there needs it); enforced deny rules (all that match are
named), then allow rules (first match wins), then dry-run deny rules (``would_deny``).
No allow matched means deny. Any exception is a deny naming the error.

The compiled policy is one reference swapped whole on reload: a decision sees the old
policy or the new one, never a mix, and a policy set that fails to load or compile is
refused with its problems while the old one keeps deciding.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from policy.canonical import Refused, canonical_method, canonical_path
from policy.compiler import Bucket, CompiledPolicy, compile_policy
from policy.identity.jwt import TokenError, TokenVerifier
from policy.language import Issue, PolicyError, PolicySet, load_policy_set, policy_files
from policy.request import Decision, Request, Risk

log = logging.getLogger(__name__)


class RiskSource(Protocol):
    def risk(self, principal: str | None, ip: str | None) -> Risk | None: ...


class DecisionSink(Protocol):
    def submit(self, request: Request, decision: Decision) -> None: ...


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    version: str
    issues: tuple[Issue, ...] = ()
    changed: bool = True


#: How every denial of a request that could not be canonicalised begins (``policy.canonical``):
#: it was refused before any policy applied, so what-if replays skip it.
REFUSED = "request refused:"

_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def new_decision_id() -> str:
    """Unique across processes (random prefix per process) and cheap (a counter)."""
    return f"{_PREFIX}{next(_COUNTER):010x}"


#: claims that change each time a token is minted for the same call
_MINTING_CLAIMS = frozenset({"iat", "exp", "nbf"})


def _token_identity(token: str) -> str:
    """What a token says, not when or how it was signed: its claims without iat/exp/nbf.

    ES256 signatures are randomised and a regenerated demo mints the same call again at
    another second, so neither the signature nor the timing claims may enter a derived id.
    The payload is read without verification: this only names the decision (the engine has
    verified the token or denied it already).
    """
    parts = token.split(".")
    payload = parts[1] if len(parts) == 3 else token
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        claims = None
    if isinstance(claims, dict):
        text = json.dumps({k: v for k, v in claims.items() if k not in _MINTING_CLAIMS}, sort_keys=True, default=str)
    else:
        text = payload
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def request_decision_id(req: Request) -> str:
    """The id of a decision on a request that carries its own time (generated or replayed calls).

    Derived from the request (caller, token, service, method, path, source, time), so deciding
    the same calls again (``soc demo`` rerun, an exercise regenerated) stores nothing new; live
    requests have no time of their own and keep unique ids (``new_decision_id``).
    """
    token = _token_identity(req.token) if req.token else ""
    when = req.time.isoformat() if req.time is not None else ""
    key = "\x1f".join((req.principal or "", token, req.service, req.method, req.path, req.source_ip or "", when))
    return "dec-" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Engine:
    policy: CompiledPolicy
    verifier: TokenVerifier | None = None
    risk: RiskSource | None = None
    sink: DecisionSink | None = None
    paths: tuple[Path, ...] = ()
    #: Accept a principal asserted by the caller (a PEP that terminated mTLS) when no token is given.
    trust_asserted_principal: bool = True
    last_reload: ReloadResult | None = None
    loaded_at: float = field(default_factory=time.time)
    _watch_stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _watcher: threading.Thread | None = field(default=None, repr=False)
    _fingerprint: tuple[tuple[str, float, int], ...] = ()
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], **kwargs: object) -> Engine:
        ps = load_policy_set(paths)
        engine = cls(compile_policy(ps), paths=tuple(Path(p) for p in paths), **kwargs)  # type: ignore[arg-type]
        engine._fingerprint = engine._scan()
        engine.last_reload = ReloadResult(True, ps.version)
        return engine

    @classmethod
    def from_policy_set(cls, ps: PolicySet, **kwargs: object) -> Engine:
        return cls(compile_policy(ps), **kwargs)  # type: ignore[arg-type]

    # -- deciding --------------------------------------------------------------------------
    def decide(self, req: Request) -> Decision:
        try:
            decision = self._decide(req, self.policy)
        except Exception as exc:  # fail closed, whatever went wrong
            log.exception("policy decision failed")
            decision = self._deny(f"internal error: {type(exc).__name__}: {exc}", self.policy.version)
        if req.time is not None:
            decision = replace(decision, decision_id=request_decision_id(req))
        if self.sink is not None:
            self.sink.submit(req, decision)
        return decision

    def refuse(self, req: Request, reason: str) -> Decision:
        """A request a front could not canonicalise: denied with the reason, and logged like any decision."""
        decision = self._deny(f"{REFUSED} {reason}", self.policy.version)
        if self.sink is not None:
            self.sink.submit(req, decision)
        return decision

    def _deny(self, reason: str, version: str, rules: tuple[str, ...] = (), policies: tuple[str, ...] = ()) -> Decision:
        return Decision(False, "deny", rules, (reason,), new_decision_id(), version, (), policies)

    def authenticate(self, req: Request) -> str | None:
        """Fill identity attributes from the token; the denial reason when that fails."""
        if req.token is not None:
            if self.verifier is None:
                return "a token was presented but no trusted issuers are configured"
            try:
                ident = self.verifier.verify(req.token, service=req.service)
            except TokenError as exc:
                return f"invalid token: {exc}"
            req.principal = ident.principal
            req.namespace = ident.namespace
            req.roles, req.scopes, req.groups = ident.roles, ident.scopes, ident.groups
            req.issuer = ident.issuer
            req.authenticated = True
        elif req.principal is not None:
            if not self.trust_asserted_principal:
                return "an asserted principal is not trusted here: present a token"
            req.authenticated = True
        else:
            # Anonymous: attributes that only an identity can carry are dropped, never trusted.
            req.namespace, req.issuer = None, None
            req.roles = req.scopes = req.groups = frozenset()
        return None

    def _decide(self, req: Request, policy: CompiledPolicy) -> Decision:
        version = policy.version
        if not req.service or not req.method or not req.path:
            missing = [n for n in ("service", "method", "path") if not getattr(req, n)]
            return self._deny(f"missing request attribute(s): {', '.join(missing)}", version)
        try:
            # Idempotent: fronts already canonicalised; admin tools and /v1/decide are canonicalised here.
            req.method = canonical_method(req.method)
            req.path = canonical_path(req.path)
        except Refused as exc:
            return self._deny(f"{REFUSED} {exc}", version)
        problem = self.authenticate(req)
        if problem is not None:
            return self._deny(problem, version)
        bucket: Bucket = policy.bucket(req.service)
        if bucket.needs_risk and req.risk is None and self.risk is not None:
            req.risk = self.risk.risk(req.principal, req.source_ip)
        return self.evaluate(req, bucket, version)

    @staticmethod
    def evaluate(req: Request, bucket: Bucket, version: str) -> Decision:
        denied: list[str] = []
        reasons: list[str] = []
        for cr in bucket.denies:
            result = cr.match(req)
            if result is True:
                denied.append(cr.id)
                reasons.append(f"denied by {cr.id} ({cr.rule.where})")
            elif result is not False:
                denied.append(cr.id)
                reasons.append(f"denied by {cr.id} ({cr.rule.where}), failing closed: {result}")
        if denied:
            return Decision(False, "deny", tuple(denied), tuple(reasons), new_decision_id(), version, (),
                            tuple(dict.fromkeys(r.split("/", 1)[0] for r in denied)))
        allowed = None
        unknown: list[str] = []
        for cr in bucket.allows:
            result = cr.match(req)
            if result is True:
                allowed = cr
                break
            if result is not False:
                unknown.append(f"{cr.id} not applied: {result}")
        if allowed is None:
            why = ["no allow rule matched (default deny)", *unknown]
            for cr in bucket.dry_allows:
                if cr.match(req) is True:
                    why.append(f"dry-run rule {cr.id} would allow")
            return Decision(False, "deny", (), tuple(why), new_decision_id(), version)
        would = [cr.id for cr in bucket.dry_denies if cr.match(req) is not False]
        if would:
            return Decision(True, "would_deny", (allowed.id,),
                            (f"allowed by {allowed.id}", *(f"dry-run rule {w} would deny" for w in would)),
                            new_decision_id(), version, tuple(would), (allowed.rule.policy,))
        return Decision(True, "allow", (allowed.id,), (f"allowed by {allowed.id}",), new_decision_id(), version,
                        (), (allowed.rule.policy,))

    # -- hot reload ------------------------------------------------------------------------
    def _scan(self) -> tuple[tuple[str, float, int], ...]:
        out = []
        for f in policy_files(self.paths) if self.paths else []:
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((str(f), st.st_mtime, st.st_size))
        for p in self.paths:
            if p.is_dir():  # a file added or removed changes the directory's mtime
                out.append((str(p), p.stat().st_mtime, 0))
        return tuple(out)

    def reload(self, *, force: bool = True) -> ReloadResult:
        """Load and compile the policy files; swap only if all of it succeeds."""
        with self._reload_lock:
            fingerprint = self._scan()
            if not force and fingerprint == self._fingerprint:
                return ReloadResult(True, self.policy.version, changed=False)
            self._fingerprint = fingerprint
            try:
                compiled = compile_policy(load_policy_set(self.paths))
            except PolicyError as exc:
                result = ReloadResult(False, self.policy.version, tuple(exc.issues))
                log.warning("policy reload refused, keeping version %s: %s", self.policy.version, exc)
            except Exception as exc:
                issue = Issue(",".join(map(str, self.paths)), 0, f"{type(exc).__name__}: {exc}")
                result = ReloadResult(False, self.policy.version, (issue,))
                log.warning("policy reload refused, keeping version %s: %s", self.policy.version, exc)
            else:
                self.policy = compiled
                self.loaded_at = time.time()
                result = ReloadResult(True, compiled.version)
                log.info("policy version %s loaded (%d rules)", compiled.version, len(compiled.rules))
            self.last_reload = result
            return result

    def watch(self, interval_s: float = 1.0) -> Engine:
        if self._watcher is None and self.paths:
            self._watch_stop.clear()

            def loop() -> None:
                while not self._watch_stop.wait(interval_s):
                    self.reload(force=False)

            self._watcher = threading.Thread(target=loop, name="ztsoc-policy-watch", daemon=True)
            self._watcher.start()
        return self

    def stop(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def status(self) -> dict[str, object]:
        last = self.last_reload
        return {
            "policy_version": self.policy.version,
            "rules": len(self.policy.rules),
            "services": len(self.policy.services()),
            "loaded_at": self.loaded_at,
            "last_reload_ok": last.ok if last else True,
            "last_reload_issues": [str(i) for i in last.issues] if last else [],
        }


def build_engine(policy_paths: Iterable[str | Path], *, trust_file: str | Path | None = None,
                 risk: RiskSource | None = None, sink: DecisionSink | None = None, watch: bool = False,
                 trust_asserted_principal: bool = True) -> Engine:
    """The one way commands and the demo assemble an engine."""
    verifier = None
    if trust_file is not None:
        from policy.identity.jwt import load_trust_config

        verifier = TokenVerifier(load_trust_config(trust_file))
    engine = Engine.from_paths(list(policy_paths), verifier=verifier, risk=risk, sink=sink,
                               trust_asserted_principal=trust_asserted_principal)
    if watch:
        engine.watch()
    return engine
