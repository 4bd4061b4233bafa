"""Check ztsoc's Sigma support against SigmaHQ's rule set and regression data.

    .venv/bin/python compat/sigma.py [--data ../shared/data/sigma] [--no-convert] [--no-regression]

For every rule in ``rules/``, ``rules-emerging-threats/``, ``rules-threat-hunting/``: does it
load (pySigma), map (our ``ztsoc`` pipeline), convert for Elasticsearch (pySigma's Lucene
backend with the same pipeline), and evaluate on the embedded engine (compiled, and run
over one event of its own log source without error)? Then ``regression_data/``: for each
``info.yml``, the EVTX file is read with our EVTX reader (``collectors/evtx.py``) and the
rule it names must fire on it. Prints counts per step and every failure with its reason.
Reads reference data outside the project; not part of the unit tests.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import Counter
from pathlib import Path

# this file is named sigma.py: keep its folder off sys.path so `import sigma` finds pySigma
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402
from sigma.rule import SigmaRule  # noqa: E402

from detections.sigma.engine import Evaluation, compile_ruleset  # noqa: E402
from detections.sigma.loader import load_rules  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "sigma"
FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting")


def _progress(done: int, total: int, label: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{label}: {done}/{total}", end="", file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)


def check_rules(data: Path, convert: bool) -> dict[str, object]:
    t0 = time.perf_counter()
    rs = load_rules([data / f for f in FOLDERS], shipped=False)
    total = len(rs.rules) + len(rs.problems)
    t_load = time.perf_counter() - t0
    load_fail = list(rs.problems)

    t0 = time.perf_counter()
    cs = compile_ruleset(rs)
    t_compile = time.perf_counter() - t0
    compile_fail = [p for p in cs.problems if p.stage == "compile"]

    convert_fail: list[tuple[str, str]] = []
    t_convert = 0.0
    if convert:
        from sigma.backends.elasticsearch import LuceneBackend

        from detections.sigma.pipelines import get_pipeline

        t0 = time.perf_counter()
        backend = LuceneBackend(get_pipeline())
        rules = list(cs.rules.values())
        for n, r in enumerate(rules, 1):
            if not isinstance(r.rule, SigmaRule):
                continue  # correlations are evaluated by ztsoc on the matched events
            rule = copy.deepcopy(r.rule)
            rule._output = True
            try:
                if not [q for q in backend.convert_rule(rule) if q]:
                    convert_fail.append((r.key, "empty query"))
            except Exception as exc:
                convert_fail.append((r.key, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"))
            if n % 200 == 0 or n == len(rules):
                _progress(n, len(rules), "convert")
        t_convert = time.perf_counter() - t0
    from detections.sigma.es_eval import _unconvertible

    es_fallback = sum(1 for cr in cs.base if _unconvertible(cr))

    # evaluate: every compiled rule runs on an event of its own log source without raising
    eval_fail: list[tuple[str, str]] = []
    from detections.sigma.matcher import EventView

    for cr in cs.base:
        probe = {name: sorted(values)[0] for name, values in cr.required.items()}
        probe.update({"@timestamp": "2026-03-01T02:00:00.000Z", "event.id": "probe", "message": "probe"})
        try:
            cr.predicate(EventView(probe))
        except Exception as exc:
            eval_fail.append((cr.key, f"{type(exc).__name__}: {exc}"[:160]))

    ok_all = total - len(load_fail) - len(compile_fail) - len({k for k, _ in convert_fail} | {k for k, _ in eval_fail})
    return {
        "total": total, "loaded": total - len(load_fail), "mapped_compiled": len(cs.rules),
        "converted": len([r for r in cs.rules.values() if isinstance(r.rule, SigmaRule)]) - len(convert_fail),
        "base_rules": len(cs.base), "correlations": len(cs.specs), "evaluated": len(cs.base) - len(eval_fail),
        "all_steps": ok_all, "unindexed": cs.matcher.unindexed, "es_fallback": es_fallback,
        "failures": {
            "load": [(p.path, p.reason) for p in load_fail],
            "compile": [(p.rule, p.reason) for p in compile_fail],
            "convert": convert_fail, "evaluate": eval_fail,
        },
        "seconds": {"load": round(t_load, 1), "compile": round(t_compile, 1), "convert": round(t_convert, 1)},
        "_cs": cs,
    }


def check_regression(data: Path, cs: object) -> dict[str, object]:
    from collectors.base import read_all
    from collectors.evtx import EvtxReader
    from detections.alerts import AlertBook

    infos = sorted((data / "regression_data").rglob("info.yml"))
    fired, missed, errors, skipped = 0, [], [], []
    reader = EvtxReader()
    by_uuid = {r.uuid: key for key, r in cs.rules.items()}  # type: ignore[attr-defined]
    for n, info_path in enumerate(infos, 1):
        info = yaml.safe_load(info_path.read_text())
        rule_id = str(info["rule_metadata"][0]["id"])
        key = by_uuid.get(rule_id)
        tests = [t for t in info.get("regression_tests_info") or [] if t.get("type") == "evtx"]
        if not tests:
            skipped.append((rule_id, "no EVTX test in info.yml"))
            continue
        evtx_rel = tests[0]["path"]
        evtx = data / evtx_rel
        if not evtx.exists():
            evtx = info_path.parent / Path(evtx_rel).name
        if key is None:
            errors.append((rule_id, "rule not loaded/compiled"))
            continue
        try:
            result = read_all(reader, evtx)
        except Exception as exc:
            errors.append((rule_id, f"EVTX read: {type(exc).__name__}: {exc}"[:160]))
            continue
        ev = Evaluation(cs, AlertBook(None)).run(  # type: ignore[arg-type]
            sorted(result.events, key=lambda d: str(d.get("@timestamp"))))
        if ev.stats.matches.get(key) or ev.stats.firings.get(key):
            fired += 1
        else:
            missed.append((rule_id, key, info["rule_metadata"][0].get("title"), len(result.events)))
        _progress(n, len(infos), "regression")
    return {"cases": len(infos) - len(skipped), "fired": fired, "missed": missed, "errors": errors,
            "skipped": skipped}


def check_fields(data: Path, cs: object) -> dict[str, object]:
    """Fields Windows rules test that no sample event carries: mapping gaps show up here.

    The events are every EVTX of ``evtx-attack-samples`` and ``regression_data``, read with our
    reader; a field "occurs" when some event has it (Windows data fields also under the names
    the matcher resolves: spaces removed, UserData flattened). A field no event has is either a
    channel the samples lack or a field our reader names differently (``Data`` for unnamed
    ``<Data>`` elements was one), so each is listed with the number of rules that need it.
    """
    from collectors.base import read_all
    from collectors.evtx import EvtxReader
    from detections.sigma.matcher import INDEX_FIELDS, detection_fields

    files = sorted((data.parent / "evtx-attack-samples").rglob("*.evtx")) + sorted(
        (data / "regression_data").rglob("*.evtx"))
    present: set[str] = set()
    reader = EvtxReader()
    for path in files:
        try:
            events = read_all(reader, path).events
        except Exception:
            continue
        for e in events:
            for key in e:
                present.add(key)
                if key.startswith(("winlog.event_data.", "winlog.user_data.")):
                    present.add("winlog.event_data." + key.rsplit(".", 1)[-1].replace(" ", ""))
    missing: Counter[str] = Counter()
    windows = complete = 0
    for cr in cs.base:  # type: ignore[attr-defined]
        if cr.rule.logsource.product != "windows":
            continue
        windows += 1
        fields = [f for f in detection_fields(cr) if f not in INDEX_FIELDS]
        absent = [f for f in fields if f not in present]
        missing.update(absent)
        complete += not absent
    return {"files": len(files), "fields_seen": len(present), "windows_rules": windows,
            "rules_all_fields_seen": complete, "missing": missing}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--no-convert", action="store_true")
    ap.add_argument("--no-regression", action="store_true")
    ap.add_argument("--fields", action="store_true", help="also list the fields rules test that no sample event has")
    args = ap.parse_args()
    if not (args.data / "rules").is_dir():
        print(f"no SigmaHQ data at {args.data}", file=sys.stderr)
        return 2
    res = check_rules(args.data, not args.no_convert)
    total = int(res["total"])  # type: ignore[call-overload]
    pct = lambda n: f"{n} / {total} ({100.0 * int(n) / max(total, 1):.2f}%)"  # noqa: E731
    print(f"SigmaHQ rules: {total} ({', '.join(FOLDERS)})")
    print(f"  load (pySigma):                 {pct(res['loaded'])}")
    print(f"  map + compile (embedded):       {pct(res['mapped_compiled'])}  "
          f"[{res['base_rules']} rules, {res['correlations']} correlations, {res['unindexed']} unindexed]")
    if not args.no_convert:
        print(f"  convert for Elasticsearch:      {res['converted']} / {res['base_rules']} base rules (Lucene); "
              f"{res['es_fallback']} run on ES as mandatory fields + predicate (|hour, regex beyond Lucene)")
    print(f"  evaluate (embedded):            {res['evaluated']} / {res['base_rules']}")
    print(f"  through every step:             {pct(res['all_steps'])}")
    print(f"  seconds: {res['seconds']}")
    failures = res["failures"]
    assert isinstance(failures, dict)
    for stage, items in failures.items():
        reasons = Counter(r.split(":")[0] if stage != "convert" else r[:90] for _, r in items)
        if items:
            print(f"  {stage} failures by reason:")
            for reason, n in reasons.most_common():
                print(f"    {n:5d}  {reason}")
            for item in items[:50]:
                print(f"          - {item[0]}: {item[1]}")
    if not args.no_regression:
        reg = check_regression(args.data, res["_cs"])
        cases = int(reg["cases"])  # type: ignore[call-overload]
        print(f"regression_data: {reg['fired']} / {cases} rules fire on their EVTX "
              f"({100.0 * int(reg['fired']) / max(cases, 1):.1f}%)")  # type: ignore[call-overload]
        for item in reg["missed"]:  # type: ignore[attr-defined]
            print(f"    missed: {item}")
        for item in reg["errors"]:  # type: ignore[attr-defined]
            print(f"    error: {item}")
        print(f"  ({len(reg['skipped'])} info.yml without an EVTX test skipped)")  # type: ignore[arg-type]
    if args.fields:
        fr = check_fields(args.data, res["_cs"])
        print(f"fields: {fr['rules_all_fields_seen']} / {fr['windows_rules']} Windows rules test only fields some of "
              f"the {fr['files']} sample EVTX files' events carry ({fr['fields_seen']} distinct fields seen)")
        missing = fr["missing"]
        assert isinstance(missing, Counter)
        print(f"  {len(missing)} fields never seen, by the number of rules testing them:")
        for name, n in missing.most_common(40):
            print(f"    {n:5d}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
