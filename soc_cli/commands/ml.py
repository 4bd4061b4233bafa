"""``soc ml train|score|explain|models``: the anomaly detectors from the command line.

Thin over ``detections.ml``; scikit-learn and skops are imported inside the commands so
``soc --help`` stays fast.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from eventstore.timeutil import parse_duration, utcnow
from locales import _
from soc_cli.context import StoreOption, since_option, use_store
from soc_cli.errors import raised_text
from soc_cli.output import console, emit, err_console, esc, safe

ModelsOption = typer.Option(None, "--models", envvar="SOC_MODEL_DIR",
                            help="model directory (default: the user data directory's ztsoc/models)")


def _kinds(text: str | None) -> list[str] | None:
    return [k.strip() for k in text.split(",") if k.strip()] if text else None


def register(app: typer.Typer) -> None:
    ml = typer.Typer(help="Anomaly detection: train on a baseline period, score, explain.", no_args_is_help=True)
    app.add_typer(ml, name="ml")

    @ml.command("train")
    def train(
        since: str = typer.Option("7d", "--since", help="start of the baseline period (7d, ISO time)"),
        until: str = typer.Option(None, "--until", help="end of the baseline period (default: now)"),
        kind: str = typer.Option(None, "--kind", help="comma-separated entity kinds (user,host,service)"),
        window: str = typer.Option("15m", "--window", help="entity-window length"),
        detector: str = typer.Option("iforest", "--detector", help="the detector whose threshold raises alerts"),
        alert_rate: float = typer.Option(0.001, "--alert-rate", help="share of baseline windows above threshold"),
        seed: int = typer.Option(0, "--seed"),
        models: Path = ModelsOption,
        as_json: bool = typer.Option(False, "--json"),
        store: str = StoreOption,
    ) -> None:
        """Learn each entity kind's baseline and detectors; save them with a signed manifest."""
        from detections.ml.features import select_kinds
        from detections.ml.models import DETECTORS
        from detections.ml.persistence import model_dir, save_model
        from detections.ml.training import TrainOptions, train_kind

        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}: expected one of {', '.join(DETECTORS)}")
        if not 0 < alert_rate < 1:
            raise ValueError(f"--alert-rate must be between 0 and 1, got {alert_rate}")
        start = since_option(since)
        end = since_option(until) or utcnow()
        assert start is not None
        if start >= end:
            raise ValueError(f"--since {since} is not before --until {until or 'now'}")
        seconds = int(parse_duration(window).total_seconds())
        detectors = tuple(dict.fromkeys(("iforest", "mad", detector)))
        options = TrainOptions(window_seconds=seconds, detectors=detectors, alerting=detector,
                               alert_rate=alert_rate, seed=seed)
        directory = model_dir(models)
        s = use_store(store)
        rows: list[dict[str, Any]] = []
        for k in select_kinds(_kinds(kind)):
            training = _("training {kind}...").format(kind=k.name)
            with console.status(esc(training)) if console.is_terminal else nullcontext():
                try:
                    model = train_kind(s, k, start, end, options)
                except ValueError as exc:
                    skipped = _("skipped:")
                    err_console.print(f"[yellow]{esc(skipped)}[/] {esc(raised_text(exc))}", highlight=False)
                    continue
                path = save_model(model, directory)
            rows.append({"kind": k.name, "windows": model.n_windows,
                         "own_baseline": len(model.baseline.entity_index), "detector": detector,
                         "threshold": round(model.thresholds[detector], 4),
                         "trained_since": model.trained_since, "trained_until": model.trained_until,
                         "manifest": str(path)})
        emit(rows, ["kind", "windows", "own_baseline", "detector", "threshold", "manifest"], as_json=as_json,
             ndjson=False, title=_("models trained on {since} .. {until}").format(
                 since=rows[0]["trained_since"], until=rows[0]["trained_until"]) if rows else _("no model trained"))
        if not rows:
            raise typer.Exit(1)

    @ml.command("score")
    def score(
        since: str = typer.Option("1h", "--since"),
        until: str = typer.Option(None, "--until"),
        kind: str = typer.Option(None, "--kind", help="comma-separated entity kinds"),
        detector: str = typer.Option(None, "--detector", help="score with another trained detector"),
        dry_run: bool = typer.Option(False, "--dry-run", help="show alerts without storing them"),
        limit: int = typer.Option(50, "--limit"),
        models: Path = ModelsOption,
        as_json: bool = typer.Option(False, "--json"),
        ndjson: bool = typer.Option(False, "--ndjson"),
        store: str = StoreOption,
    ) -> None:
        """Score the period with the saved models and raise alerts (refused models are named)."""
        from detections.ml.scoring import load_models, score_and_alert

        loaded, problems = load_models(models, _kinds(kind))
        s = use_store(store)
        for m in loaded:
            if m.store_url not in ("", s.url):
                problems.append(f"{m.kind}: trained on {m.store_url}, not on {s.url} (train on this store)")
        loaded = [m for m in loaded if m.store_url in ("", s.url)]
        for p in problems:
            not_used = _("not used:")
            err_console.print(f"[yellow]{esc(not_used)}[/] {esc(raised_text(p))}", highlight=False)
        if not loaded:
            raise ValueError(_("no usable model: run `soc ml train --since 7d` first"))
        alerts = score_and_alert(s, loaded, since_option(since), since_option(until),
                                 detector=detector, write=not dry_run)
        alerts.sort(key=lambda a: -float(a.get("ztsoc.alert.score") or 0))
        emit(alerts[:limit], ["event.id", "ztsoc.alert.first_seen", "rule.id", "ztsoc.alert.entity.value",
                              "ztsoc.alert.score", "ztsoc.alert.threshold", "message"],
             as_json=as_json, ndjson=ndjson, title=_("{n} anomaly alert(s)").format(n=len(alerts))
             + (" " + _("(dry run, not stored)") if dry_run else ""))

    @ml.command("explain")
    def explain(
        alert_id: str = typer.Argument(..., metavar="ID", help="alert id (or a unique prefix of it)"),
        as_json: bool = typer.Option(False, "--json"),
        store: str = StoreOption,
    ) -> None:
        """Why an anomaly alert fired: each driving feature against its baseline."""
        from detections.lifecycle import find_alert
        from detections.ml.scoring import explanation_rows

        alert = find_alert(use_store(store), alert_id)
        alert_id = str(alert["event.id"])
        rows = explanation_rows(alert)
        if not rows:
            raise ValueError(f"alert {alert_id} ({alert.get('rule.id')}) is not an anomaly alert: no explanation")
        if as_json:
            emit([{"event.id": alert_id, "rule.id": alert.get("rule.id"),
                   "ztsoc.alert.score": alert.get("ztsoc.alert.score"),
                   "ztsoc.alert.threshold": alert.get("ztsoc.alert.threshold"),
                   "ztsoc.alert.explanation": rows}], [], as_json=True, ndjson=False)
            return
        console.print(f"[bold]{esc(alert.get('rule.name'))}[/] {esc(alert.get('ztsoc.alert.entity.type'))} "
                      f"[bold]{esc(alert.get('ztsoc.alert.entity.value'))}[/] "
                      f"{esc(alert.get('ztsoc.alert.first_seen'))} .. {esc(alert.get('ztsoc.alert.last_seen'))}",
                      highlight=False)
        console.print(safe(_("score {score} against threshold {threshold}; evidence: {n} event(s)").format(
            score=alert.get("ztsoc.alert.score"), threshold=alert.get("ztsoc.alert.threshold"),
            n=alert.get("ztsoc.alert.evidence_count", 0))), highlight=False)
        emit(rows, ["label", "value", "baseline_median", "baseline_p99", "z", "baseline"], as_json=False,
             ndjson=False, title=_("what drove it"))

    @ml.command("models")
    def models_cmd(models: Path = ModelsOption, as_json: bool = typer.Option(False, "--json"),
                   ndjson: bool = typer.Option(False, "--ndjson")) -> None:
        """The saved models, verified (a tampered or incompatible one says why it is refused)."""
        from detections.ml.persistence import list_models, model_dir

        rows = list_models(model_dir(models))
        emit(rows, ["kind", "status", "trained_since", "trained_until", "n_windows", "alerting"],
             as_json=as_json, ndjson=ndjson, title=_("models in {path}").format(path=model_dir(models)))
        if any(r["status"] != "ok" for r in rows):
            raise typer.Exit(1)
