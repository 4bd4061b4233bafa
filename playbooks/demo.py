"""The main job, end to end, on whatever store it is given: ``soc demo``.

A generated working day (``playbooks.generators.workday``) is written as the sensors
would write it, then each stage of ``STAGES`` runs in order over the same store:
collect the files with the real collectors, decide service calls with the policy
engine, run the detections. Each stage reports what it did; the CLI prints it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.pipeline import ingest
from collectors.registry import get_reader
from eventstore.store import Store
from locales import N_, _
from playbooks.generators.workday import DEMO_INCIDENTS, Artefacts, generate


@dataclass
class DemoContext:
    store: Store
    workdir: Path
    seed: int
    flows: int
    end: datetime
    incidents: tuple[str, ...]
    artefacts: Artefacts | None = None


@dataclass
class StageResult:
    name: str
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


def stage_generate(ctx: DemoContext) -> dict[str, Any]:
    ctx.artefacts = generate(ctx.workdir, seed=ctx.seed, end=ctx.end, flows=ctx.flows, incidents=ctx.incidents)
    a = ctx.artefacts
    # The summary is for people: its labels are translated, its values (ids, paths) are not.
    return {_("packets"): a.packets, _("auth log lines"): a.auth_lines, _("windows events"): a.windows_events,
            _("incidents"): ", ".join(a.incidents) or _("none"), _("files"): str(a.directory)}


def stage_collect(ctx: DemoContext) -> dict[str, Any]:
    assert ctx.artefacts is not None
    a = ctx.artefacts
    out: dict[str, Any] = {}
    for reader_name, path in (("pcap", a.pcap), ("syslog", a.auth_log), ("jsonl", a.windows_jsonl)):
        report = ingest(ctx.store, get_reader(reader_name), [path])
        out[_("{reader} events").format(reader=reader_name)] = report.written
        if report.duplicates:
            out[_("{reader} already stored").format(reader=reader_name)] = report.duplicates
        if report.problem_count:
            out[_("{reader} problems").format(reader=reader_name)] = dict(report.problems)
    return out


def stage_decide(ctx: DemoContext) -> dict[str, Any]:
    from playbooks.generators.service_calls import send_calls

    assert ctx.artefacts is not None
    report = send_calls(ctx.store, ctx.artefacts.calls, ctx.workdir / "pdp", changes=ctx.artefacts.policy_changes)
    return {_("service calls"): report.calls, _("allowed"): report.allowed, _("denied"): report.denied,
            _("would deny (dry-run rules)"): report.would_deny, _("decisions logged"): report.logged}


def stage_detect(ctx: DemoContext) -> dict[str, Any]:
    from detections.runner import run_detections

    report = run_detections(ctx.store, since=ctx.end - timedelta(hours=25), until=ctx.end + timedelta(hours=1))
    out: dict[str, Any] = {_("rules"): report.rules, _("events examined"): report.events,
                           _("new alerts"): report.alerts_new}
    if report.alerts_updated:
        out[_("alerts refreshed")] = report.alerts_updated
    out.update({f"  {rule}": n for rule, n in sorted(report.per_rule.items(), key=lambda kv: -kv[1]) if n})
    return out


#: The chain, in order. Each stage returns a summary for the report; its name is shown
#: translated (``_(result.name)``), so it stays the same whatever the language.
STAGES: list[tuple[str, Callable[[DemoContext], dict[str, Any]]]] = [
    (N_("generate a working day"), stage_generate),
    (N_("collect"), stage_collect),
    (N_("decide service calls"), stage_decide),
    (N_("detect"), stage_detect),
]


def run_demo(store: Store, workdir: Path, *, seed: int = 7, flows: int = 2500, end: datetime | None = None,
             incidents: tuple[str, ...] = DEMO_INCIDENTS,
             on_stage: Callable[[StageResult], None] | None = None) -> list[StageResult]:
    # The day ends on the hour: running the demo twice within an hour regenerates the same
    # files, and the collectors store nothing new the second time.
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ctx = DemoContext(store, workdir, seed, flows, end, incidents)
    results = []
    for name, fn in STAGES:
        started = time.perf_counter()
        summary = fn(ctx)
        result = StageResult(name, time.perf_counter() - started, summary)
        results.append(result)
        if on_stage:
            on_stage(result)
    return results
