"""``soc policy lint|test|explain|whatif|diff|serve|decide``: the admin's and the PEP's view of the PDP."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from locales import N_, _, format_number
from soc_cli.context import STATE, StoreOption, since_option, use_store
from soc_cli.errors import issue_text, raised_text
from soc_cli.labels import label
from soc_cli.output import (
    console,
    emit,
    emit_json,
    err_console,
    esc,
    json_text,
    safe,
    visible,
    write_generated,
)

# Exit codes are raised as SystemExit, not typer.Exit: soc_cli.main runs the app with
# standalone_mode=False, where click turns typer.Exit into a return value that main() drops.
PolicyOption = typer.Option(..., "--policy", "-p", help="policy file or directory (repeatable)")
TrustOption = typer.Option(None, "--trust", help="trust file (YAML): token issuers and SPIFFE trust domains")


#: how the gRPC port is secured, as the banner says it
TLS_KINDS: dict[str, str] = {"mutual": N_("mutual TLS"), "tls": N_("TLS"), "plaintext": N_("plaintext")}


def _store_url(store: str | None) -> str:
    from eventstore import default_store_url

    return store or STATE.store_url or default_store_url()


def _read_json(source: str) -> dict[str, Any]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(_("{source}: not JSON: {error}").format(source=source, error=exc)) from exc
    if not isinstance(data, dict):
        raise ValueError(_("{source}: expected a JSON object (service, method, path, token or principal, ...)").format(
            source=source))
    return data


def _engine(policy: list[Path], trust: Path | None, store: str | None, *, with_risk: bool) -> Any:
    from policy.engine import build_engine
    from policy.risk import StoreRisk

    risk = None
    if with_risk:
        from eventstore import open_store

        url = _store_url(store)
        risk = StoreRisk(lambda: open_store(url))
        risk.refresh()
        if risk.last_error:
            why = _("risk unavailable ({error}); risk rules fail closed").format(error=risk.last_error)
            warning = _("warning:")
            err_console.print(f"[yellow]{esc(warning)}[/] {esc(why)}", highlight=False)
    return build_engine(policy, trust_file=trust, risk=risk)


def register(app: typer.Typer) -> None:
    policy_app = typer.Typer(help="Zero-trust access policies: check, test, explain, replay, serve.",
                             no_args_is_help=True)
    app.add_typer(policy_app, name="policy")

    @policy_app.command("schema")
    def schema_cmd() -> None:
        """Print the policy language's JSON Schema (for editors and CI validators)."""
        from policy.language import SCHEMA_PATH

        write_generated(SCHEMA_PATH.read_text(encoding="utf-8"))

    @policy_app.command("lint")
    def lint_cmd(
        paths: list[Path] = typer.Argument(..., help="policy files or directories"),
        strict: bool = typer.Option(False, "--strict", help="warnings fail too"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
    ) -> None:
        """Schema errors (file:line), shadowed or unreachable rules, overly broad allows."""
        from policy.admin.lint import lint

        issues = lint(paths)
        rows = [{"file": i.file, "line": i.line, "severity": i.severity, "message": i.message} for i in issues]
        if as_json or ndjson:
            emit_json(rows, ndjson=ndjson)
        else:
            for i in issues:
                console.print(Text.assemble(safe(f"{i.file}:{i.line}: "),
                                            (visible(label(i.severity)), "red" if i.severity == "error" else "yellow"),
                                            ": ", safe(raised_text(i.message))), highlight=False, soft_wrap=True)
            if not issues:
                console.print(esc(_("no problems found")))
        if any(i.severity == "error" for i in issues) or (strict and issues):
            raise SystemExit(1)

    @policy_app.command("test")
    def test_cmd(
        cases: Path = typer.Argument(..., help="test cases (YAML): cases with request, expect, optional rule"),
        policy: list[Path] = typer.Option(None, "--policy", "-p", help="override the cases file's policies"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
        coverage: bool = typer.Option(False, "--coverage", help="also list the rules no case's request matched"),
    ) -> None:
        """Run request -> expected-decision cases against the policies (like opa test)."""
        from policy.admin.testcases import run_cases_with_engine, uncovered_rules

        results, issues, engine = run_cases_with_engine(cases, policy or None)
        error = _("error:")
        for i in issues:
            err_console.print(f"[red]{esc(error)}[/] {esc(issue_text(i))}", highlight=False, soft_wrap=True)
        if issues or engine is None:
            raise SystemExit(2)
        uncovered = uncovered_rules(engine, results) if coverage else []
        if as_json or ndjson:
            rows = [r.to_dict() for r in results]
            if coverage:
                rows += [{"uncovered_rule": rule, "where": where} for rule, where in uncovered]
            emit_json(rows, ndjson=ndjson)
        else:
            for r in results:
                extra = "" if r.passed else f"  {raised_text(r.problem)}"
                verdict = safe(_("PASS"), "green") if r.passed else safe(_("FAIL"), "red")
                console.print(Text.assemble(verdict, " ", safe(f"{cases}:{r.line} {r.name}{extra}")), highlight=False,
                              soft_wrap=True)
            failed = sum(not r.passed for r in results)
            console.print(esc(_("{passed}/{total} passed").format(passed=format_number(len(results) - failed),
                                                                  total=format_number(len(results)))))
            if coverage:
                total = len(engine.policy.rules)
                said = _("coverage: {matched}/{total} rules matched by a case").format(
                    matched=format_number(total - len(uncovered)), total=format_number(total))
                tail = _("; no case matched:") if uncovered else ""
                console.print(esc(said + tail), highlight=False)
                for rule, where in uncovered:
                    console.print(safe(f"  {rule}  ({where})"), highlight=False, soft_wrap=True)
        if any(not r.passed for r in results):
            raise SystemExit(1)

    @policy_app.command("explain")
    def explain_cmd(
        request: str = typer.Argument(..., help="REQUEST.json (or - for stdin)"),
        policy: list[Path] = PolicyOption,
        trust: Path = TrustOption,
        no_risk: bool = typer.Option(False, "--no-store-risk",
                                     help="do not read open alerts from the store: the caller has none unless the "
                                          "request gives 'risk' (as in soc policy test)"),
        as_json: bool = typer.Option(False, "--json"),
        store: str = StoreOption,
    ) -> None:
        """Every rule: matched or not, and which condition failed; the decision and its reasons."""
        from policy.admin.explain import explain
        from policy.admin.offline import offline_request

        data = _read_json(request)
        engine = _engine(policy, trust, store, with_risk=not no_risk and "risk" not in data)
        ex = explain(engine, offline_request(data, store_risk=not no_risk))
        if as_json:
            emit_json([ex.to_dict()])
            return
        d = ex.decision
        console.print(Text.assemble((visible(label(d.action).upper()), "green" if d.allow else "red"),
                                    safe(" " + _("decision {id}: {reason}").format(
                                        id=d.decision_id, reason="; ".join(raised_text(r) for r in d.reasons)))),
                      highlight=False)
        rows = [{"rule": t.rule, "effect": label(t.effect) + (" " + _("(dry-run)") if t.dry_run else ""),
                 "where": t.where, "matched": _("yes") if t.matched else _("no"), "failed": t.failed,
                 "detail": t.detail} for t in ex.traces]
        emit(rows, ["rule", "effect", "matched", "failed", "detail", "where"], as_json=False, ndjson=False)
        if not d.allow:
            for miss in ex.near_misses:
                console.print(safe("  " + _("near miss: {miss}").format(miss=raised_text(miss))), highlight=False)

    @policy_app.command("decide")
    def decide_cmd(
        request: str = typer.Argument(..., help="REQUEST.json (or - for stdin)"),
        policy: list[Path] = PolicyOption,
        trust: Path = TrustOption,
        log: bool = typer.Option(False, "--log", help="record the decision in the store"),
        no_risk: bool = typer.Option(False, "--no-store-risk",
                                     help="do not read open alerts from the store: the caller has none unless the "
                                          "request gives 'risk' (as in soc policy test)"),
        store: str = StoreOption,
    ) -> None:
        """Decide one request and print the decision as JSON; exit 1 when denied."""
        from policy.admin.offline import offline_request
        from policy.decision_log import decision_event

        data = _read_json(request)
        engine = _engine(policy, trust, store, with_risk=not no_risk and "risk" not in data)
        req = offline_request(data, store_risk=not no_risk)
        d = engine.decide(req)
        if log:
            result = use_store(store).write_events([decision_event(req, d)])
            if result.errors:
                raise ValueError(_("store refused the decision: {why}").format(why=result.errors[0][1]))
        emit_json([{**d.to_dict(), "reason": d.reason, "principal": req.principal}])
        if not d.allow:
            raise SystemExit(1)

    @policy_app.command("diff")
    def diff_cmd(
        sets: list[Path] = typer.Argument(None, help="OLD NEW: two policy files or directories"),
        old: list[Path] = typer.Option(None, "--old", "-a", help="policy file or directory (repeatable)"),
        new: list[Path] = typer.Option(None, "--new", "-b", help="policy file or directory (repeatable)"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
    ) -> None:
        """Rules added, removed and changed (field by field) between two policy sets: OLD NEW, or -a ... -b ...."""
        from policy.admin.diff import diff_paths

        if sets and (old or new):
            raise ValueError(_("give OLD NEW or --old/--new, not both"))
        if sets and len(sets) != 2:
            raise ValueError(_("give two policy sets, OLD NEW (got {n})").format(n=len(sets)))
        if sets:
            old, new = [sets[0]], [sets[1]]
        if not old or not new:
            raise ValueError(_("give two policy sets: OLD NEW, or --old ... --new ..."))
        changes = diff_paths(list(old), list(new))
        if as_json or ndjson:
            emit_json([c.to_dict() for c in changes], ndjson=ndjson)
            return
        for c in changes:
            colour = {"added": "green", "removed": "red"}.get(c.change, "yellow")
            console.print(Text.assemble((visible(label(c.change).ljust(8)), colour), safe(f" {c.rule}  ({c.where})")),
                          highlight=False, soft_wrap=True)
            for name, a, b in c.fields:
                console.print(safe(f"           {name}: {a!r} -> {b!r}"), highlight=False, soft_wrap=True)
        if not changes:
            console.print(esc(_("no rule changed")))

    @policy_app.command("whatif")
    def whatif_cmd(
        candidate: list[Path] = typer.Argument(..., help="candidate policy files or directories"),
        since: str = typer.Option("7d", "--since", help="15m, 24h, 7d or an ISO time"),
        until: str = typer.Option(None, "--until"),
        limit: int = typer.Option(1000, "--limit", help="changes listed (all are counted)"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
        store: str = StoreOption,
    ) -> None:
        """Replay logged decisions under a candidate policy; list every decision that would change."""
        from policy.admin.whatif import whatif

        report = whatif(use_store(store), candidate, since=since_option(since), until=since_option(until),
                        limit=limit)
        rows = [c.to_dict() for c in report.changes]
        if as_json or ndjson:
            emit_json(rows, ndjson=ndjson)
        else:
            emit(rows, ["@timestamp", "user.name", "service.name", "http.request.method", "url.path", "old", "new",
                        "new_reason"], as_json=False, ndjson=False,
                 title=_("{changed} of {replayed} replayed decisions would change").format(
                     changed=format_number(report.changed), replayed=format_number(report.replayed)))
            err_console.print(safe(json_text(report.summary())), highlight=False)

    @policy_app.command("keys")
    def keys_cmd(
        folder: Path = typer.Argument(..., help="folder for the key set and its trust.yaml"),
        issuer: str = typer.Option("https://idp.province.example", "--issuer", help="the people IdP's iss"),
        trust_domain: str = typer.Option("province.example", "--trust-domain", help="the SPIFFE trust domain"),
        force: bool = typer.Option(False, "--force", help="replace a key set already there"),
    ) -> None:
        """A local key set (IdP + SPIFFE, ES256) and a trust.yaml for trying serve/decide with real tokens."""
        from policy.admin.keygen import make_keys

        files = make_keys(folder, issuer=issuer, trust_domain=trust_domain, force=force)
        console.print(safe(_("trust file: {path}").format(path=files.trust)), highlight=False, soft_wrap=True)
        for p in files.public:
            console.print(safe(_("public keys: {path}").format(path=p)), highlight=False, soft_wrap=True)
        for p in files.private:
            console.print(safe(_("private key (0600): {path}").format(path=p)), highlight=False, soft_wrap=True)

    @policy_app.command("token")
    def token_cmd(
        folder: Path = typer.Argument(..., help="a folder made by `soc policy keys`"),
        subject: str = typer.Option(..., "--sub", help="spiffe://DOMAIN/... for a workload, else a person"),
        audience: str = typer.Option(None, "--aud", help="the destination service (required for a person)"),
        roles: list[str] = typer.Option(None, "--role", help="a role claim (repeatable)"),
        scopes: list[str] = typer.Option(None, "--scope", help="a scope (repeatable)"),
        groups: list[str] = typer.Option(None, "--group", help="a group (repeatable)"),
        ttl: int = typer.Option(300, "--ttl", min=1, max=86400, help="seconds until it expires"),
    ) -> None:
        """Print a token signed with a local key set (for trying the PDP, never for production)."""
        from policy.admin.keygen import make_token

        # a JWT this program just signed: base64url and dots, printed as it is
        write_generated(make_token(folder, subject, audience=audience, roles=tuple(roles or ()),
                                   scopes=tuple(scopes or ()), groups=tuple(groups or ()), ttl_s=ttl) + "\n")

    @policy_app.command("serve")
    def serve_cmd(
        policy: list[Path] = PolicyOption,
        trust: Path = TrustOption,
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8181, "--port"),
        authz_prefix: str = typer.Option("/authz", "--authz-prefix",
                                         help="proxied requests arrive under this prefix (Envoy path_prefix); "
                                              "'' with --admin-port: every request on --port is a decision"),
        admin_port: int = typer.Option(None, "--admin-port",
                                       help="separate listener for /healthz, /readyz and /v1/decide"),
        service: str = typer.Option(None, "--service",
                                    help="this listener decides for one service (else a trusted proxy names it)"),
        log: bool = typer.Option(True, "--log/--no-log", help="record decisions in the store"),
        spill: Path = typer.Option(None, "--spill", help="JSONL file for decisions while the store is down"),
        watch: bool = typer.Option(True, "--watch/--no-watch", help="hot-reload policy files"),
        trust_asserted: bool = typer.Option(False, "--trust-asserted-principal",
                                            help="accept 'principal' in /v1/decide without a token"),
        workers: int = typer.Option(1, "--workers", min=1, help="server processes sharing the port"),
        grpc_port: int = typer.Option(None, "--grpc-port", min=0,
                                      help="also answer Envoy/Istio gRPC ext_authz (Authorization/Check) here"),
        grpc_cert: Path = typer.Option(None, "--grpc-tls-cert", help="TLS certificate (PEM) for the gRPC port"),
        grpc_key: Path = typer.Option(None, "--grpc-tls-key", help="its private key (PEM)"),
        grpc_client_ca: Path = typer.Option(None, "--grpc-client-ca",
                                            help="mutual TLS: only callers with a certificate from this CA"),
        store: str = StoreOption,
    ) -> None:
        """HTTP decision server: Envoy ext_authz (HTTP), POST /v1/decide, /healthz, /readyz; gRPC ext_authz."""
        from platformdirs import user_data_dir

        from policy.canonical import load_front_config
        from policy.language import load_policy_set
        from policy.server import ServeConfig, check_prefix, serve

        url = _store_url(store)
        ps = load_policy_set(policy)  # fail here, with file and line, before any process starts
        check_prefix(authz_prefix)
        if not authz_prefix and admin_port is None:
            raise ValueError(_("--authz-prefix '': without a prefix, /healthz, /readyz and /v1/decide need their own "
                               "listener: add --admin-port PORT"))
        front = load_front_config(trust, service=service)
        spill_path = spill or Path(user_data_dir("ztsoc")) / "policy-decisions.spill.jsonl"
        cfg = ServeConfig(policy=[str(p) for p in policy], store_url=url, spill=str(spill_path),
                          trust=str(trust) if trust else None, authz_prefix=authz_prefix, log=log, watch=watch,
                          trust_asserted_principal=trust_asserted, service=service, admin_port=admin_port)
        where = _("decisions under {url}").format(url=f"http://{host}:{port}{authz_prefix}/") if authz_prefix else \
            _("decisions on every path of {url}").format(url=f"http://{host}:{port}")
        admin = f"http://{host}:{admin_port}" if admin_port is not None else f"http://{host}:{port}"
        tls_kind = _(TLS_KINDS["mutual" if grpc_client_ca else ("tls" if grpc_cert else "plaintext")])
        grpc = _(", gRPC ext_authz on {address} ({tls})").format(address=f"{host}:{grpc_port}", tls=tls_kind) \
            if grpc_port is not None else ""
        banner = _("ztsoc PDP: {where}{grpc}, health and /v1/decide on {admin} (policy {version}, {rules} rules, "
                   "{proxies} trusted prox(ies), {workers} worker(s), store {store})").format(
            where=where, grpc=grpc, admin=admin, version=ps.version, rules=len(ps.rules), proxies=len(front.proxies),
            workers=workers, store=url)

        def say_banner() -> None:  # once the configuration loaded and the ports are bound, never before an error
            err_console.print(safe(banner), highlight=False, soft_wrap=True)

        if grpc_port is not None:
            if workers > 1:
                raise ValueError(_("--grpc-port runs in the single-process server: use --workers 1"))
            from policy import grpc_authz

            tls = None
            if grpc_cert or grpc_key or grpc_client_ca:
                if not (grpc_cert and grpc_key):
                    raise ValueError(_("--grpc-tls-cert and --grpc-tls-key go together (and --grpc-client-ca needs "
                                       "both)"))
                tls = grpc_authz.GrpcTls(grpc_cert, grpc_key, grpc_client_ca)
            grpc_authz.serve(cfg, host, port, grpc_port, on_listening=say_banner, tls=tls)
            return
        serve(cfg, host, port, workers, on_listening=say_banner)
