"""``soc rules list|validate|test|export|coverage``: the Sigma rules, shipped and the user's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from locales import _
from soc_cli.errors import raised_text
from soc_cli.labels import label, rule_title
from soc_cli.output import console, emit, err_console, esc, write_generated

RulesOption = typer.Option(None, "--rules", help="extra rules folder (repeatable), beside the shipped rules")


def _load_set(rules: list[Path] | None, *, shipped: bool = True) -> Any:
    """``load_compiled_cached`` for a one-shot command: the set read with the cyclic GC off and frozen
    before it comes back on. Otherwise the first collection afterwards walks every object the load
    made (~0.3 CPU s of ``soc rules test`` on SigmaHQ's Windows folder), to find nothing."""
    import gc

    from detections.sigma.cache import load_compiled_cached
    from eventstore.gc_pause import gc_paused
    from soc_cli.context import idle_cpus

    with gc_paused():  # a cold compile of a large set shares the idle CPUs (this command has no threads)
        loaded = load_compiled_cached(tuple(rules or []), shipped=shipped, jobs=idle_cpus())
        gc.freeze()
    return loaded


def register(app: typer.Typer) -> None:
    rules_app = typer.Typer(help="Sigma detection rules.", no_args_is_help=True)
    app.add_typer(rules_app, name="rules")

    @rules_app.command("list")
    def list_rules(
        rules: list[Path] = RulesOption,
        no_shipped: bool = typer.Option(False, "--no-shipped"),
        limit: int = typer.Option(None, "--limit"),
        lucene: bool = typer.Option(False, "--lucene", help="add each rule as pySigma's Lucene query string (for Kibana)"),
        dsl: bool = typer.Option(False, "--dsl", help="add the query DSL each rule runs in Elasticsearch"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
    ) -> None:
        """Every loaded rule: id, title, level, type, ATT&CK tags, file (and its Elasticsearch query)."""
        rs, cs, _cached = _load_set(rules, shipped=not no_shipped)
        rows: list[dict[str, Any]] = [{
            "rule.id": r.key, "rule.name": r.title, "ztsoc.alert.level": r.level,
            "type": r.rule.type.name.lower() if r.is_correlation else "rule",  # type: ignore[union-attr]
            "tags": [t for t in r.tags if t.startswith("attack.")], "path": str(r.path),
        } for r in rs.rules]
        rows = rows[:limit] if limit else rows
        columns = ["rule.id", "rule.name", "ztsoc.alert.level", "type", "tags"]
        if lucene:
            from detections.sigma.es_eval import convert

            queries = convert(cs)
            for row in rows:
                q = queries.get(row["rule.id"])
                row["query"] = q.query if q else "(correlation: evaluated on the matched events)"
                row["native"] = q.native if q else None
            columns.append("query")
        if dsl:
            import json

            from detections.sigma.es_eval import dsl_queries

            found = dsl_queries(cs)
            for row in rows:
                d = found.get(row["rule.id"])
                row["dsl"] = json.dumps(d) if d is not None and not as_json and not ndjson else d
            columns.append("dsl")
        if not (as_json or ndjson):  # a person reads the table: the rule's title and level in the language
            rows = [{**row, "rule.name": rule_title(row), "ztsoc.alert.level": label(row["ztsoc.alert.level"])}
                    for row in rows]
        emit(rows, columns, as_json=as_json, ndjson=ndjson, title=_("{n} rules ({bad} unusable)").format(n=len(rs.rules), bad=len(rs.problems)))

    @rules_app.command("validate")
    def validate(
        rules: list[Path] = RulesOption,
        no_shipped: bool = typer.Option(False, "--no-shipped"),
        samples: bool = typer.Option(True, "--samples/--no-samples", help="also run each rule's sample events"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
    ) -> None:
        """Load, map and compile every rule (and run its samples); every unusable rule with its reason."""
        from detections.sigma.loader import RuleProblem
        from detections.sigma.samples import check_samples

        rs, cs, _cached = _load_set(rules, shipped=not no_shipped)
        problems: list[RuleProblem] = list(cs.problems)
        if samples:
            for r in rs.rules:
                if r.key in cs.rules and r.meta.samples:
                    for res in check_samples(rs, r):
                        if not res.ok:
                            problems.append(RuleProblem(str(r.path), r.key, f"samples:{res.kind}", res.reason))
        rows = [p.as_dict() for p in problems]
        if as_json or ndjson or rows:
            shown = rows if as_json or ndjson else [{**r, "reason": raised_text(r["reason"])} for r in rows]
            emit(shown, ["path", "rule", "stage", "reason"], as_json=as_json, ndjson=ndjson,
                 title=_("{n} problem(s) in {rules} rule(s)").format(n=len(rows), rules=len(rs.rules) + len(rs.problems)))
        if not as_json and not ndjson:
            console.print(esc(_("{n} rule(s) usable, {bad} problem(s)").format(n=len(cs.rules), bad=len(rows))),
                          highlight=False)
        if rows:
            raise typer.Exit(1)

    @rules_app.command("test")
    def test(
        rule: str = typer.Argument(..., help="rule name, UUID, title or file name"),
        on: Path = typer.Option(None, "--on", help="events to test on: JSON lines, JSON array or YAML list"),
        rules: list[Path] = RulesOption,
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
    ) -> None:
        """Evaluate one rule on a file of events (or on its own samples); exit 1 if a sample check fails."""
        from detections.sigma.samples import alerts_of, check_samples, load_events

        # the set from the compiled-rule cache (heads only); the rule itself and what it
        # references are compiled alone from their files
        rs = _load_set(rules)[0]
        target = rs.find(rule)
        columns = ["event.id", "rule.id", "ztsoc.alert.entity.value", "ztsoc.alert.first_seen",
                   "ztsoc.alert.evidence_count", "message"]
        if on is not None:
            events = load_events(on)
            alerts, problems = alerts_of(rs, target, events)
            for p in problems:
                err_console.print(f"[red]{esc(p)}[/]", highlight=False)
            emit(alerts, columns, as_json=as_json, ndjson=ndjson,
                 title=f"{target.key}: " + _("{n} alert(s) on {events} event(s)").format(n=len(alerts), events=len(events)))
            if problems:
                raise typer.Exit(1)
            return
        results = check_samples(rs, target)
        rows = [{"rule": r.rule, "sample": r.kind, "events": r.events, "alerts": len(r.alerts), "ok": r.ok,
                 "reason": r.reason if as_json or ndjson else raised_text(r.reason)} for r in results]
        emit(rows, ["rule", "sample", "events", "alerts", "ok", "reason"], as_json=as_json, ndjson=ndjson,
             title=f"{target.key}: " + _("samples"))
        if not all(r.ok for r in results):
            raise typer.Exit(1)

    @rules_app.command("export")
    def export(
        rules: list[Path] = RulesOption,
        no_shipped: bool = typer.Option(False, "--no-shipped"),
        base: bool = typer.Option(False, "--base", help="only the base rules, no correlation rules "
                                                        "(for backends without correlations: sigma-cli's lucene)"),
    ) -> None:
        """The rules as Sigma YAML on standard output, e.g. for `sigma convert ... -`."""
        import yaml

        from detections.sigma.loader import rule_documents

        docs = rule_documents(rules or [], shipped=not no_shipped, base_only=base)
        # ASCII only: PyYAML escapes control and non-ASCII characters (ESC, bidi overrides) in a
        # user's rule file, so the YAML is safe on a terminal and reads back the same
        write_generated(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=False))

    @rules_app.command("coverage")
    def coverage(
        rules: list[Path] = RulesOption,
        no_shipped: bool = typer.Option(False, "--no-shipped"),
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
    ) -> None:
        """ATT&CK techniques covered by the usable rules, with the rules covering each."""
        from detections.alerts import threat_fields

        cs = _load_set(rules, shipped=not no_shipped)[1]
        by_tech: dict[str, list[str]] = {}
        tactics: dict[str, set[str]] = {}
        for key in sorted(cs.rules):
            info = cs.infos[key]
            threat = threat_fields(info.tags)
            for tech in [*threat.get("threat.technique.id", []), *threat.get("threat.technique.subtechnique.id", [])]:
                by_tech.setdefault(tech, []).append(key)
                tactics.setdefault(tech, set()).update(threat.get("threat.tactic.name", []))
        rows = [{"threat.technique.id": t, "threat.tactic.name": sorted(tactics[t]), "rules": len(by_tech[t]),
                 "rule.id": by_tech[t][:5]} for t in sorted(by_tech)]
        techniques = {t.split(".")[0] for t in by_tech}
        emit(rows, ["threat.technique.id", "threat.tactic.name", "rules", "rule.id"], as_json=as_json, ndjson=ndjson,
             title=_("{n} ATT&CK techniques ({all} incl. sub-techniques) covered by {rules} rules").format(
                 n=len(techniques), all=len(by_tech), rules=len(cs.rules)))
