"""Run one harness under atheris (coverage-guided, libFuzzer): ``python -m tests.fuzz NAME [SECONDS]``.

The corpus starts from the harness's seeds (written to a scratch folder with whatever the
run finds); a crash is written to ``tests/fuzz/regressions/<NAME>/crash-<sha1>`` so that
``tests/test_fuzz.py`` replays it from then on, and the run exits 1. At the end one JSON
line on stdout gives the executions and coverage (libFuzzer's ``cov``/``ft``) for the notes.
``python -m tests.fuzz --all SECONDS`` runs every harness one after another (``make fuzz``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eventstore.native import PURE_ENV

_STATS = re.compile(rb"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+)")


#: the modules whose code the harnesses reach, instrumented for coverage (ours only, not libraries)
PARSERS = ("collectors.pcap.reader", "collectors.pcap.flows", "collectors.pcap.apps", "collectors.evtx",
           "collectors.syslog", "collectors.journald", "collectors.jsonl", "eventstore.query.lucene",
           "detections.sigma.loader", "policy.language", "policy.identity.jwt", "policy.identity.spiffe", "policy.grpc_authz",
           "playbooks.exercise", "detections.sigma.matcher")


def _fuzz_in_process(name: str, seconds: float, corpus: Path, seed: int = 0) -> None:
    """The child: atheris with libFuzzer's own time limit and crash handling."""
    import importlib

    import atheris

    with atheris.instrument_imports(include=["collectors", "eventstore", "detections", "policy", "playbooks"]):
        for module in PARSERS:
            importlib.import_module(module)
        from tests.fuzz.harnesses import HARNESSES, REGRESSIONS, Crash
    harness = HARNESSES[name]

    def one(data: bytes) -> None:
        try:
            harness(data)
        except RecursionError as exc:
            raise Crash(f"RecursionError: {exc}") from exc

    out = REGRESSIONS / name
    out.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], f"-max_total_time={max(1, int(seconds))}", "-rss_limit_mb=1536", f"-seed={seed}",
                   "-max_len=65536", "-timeout=10", f"-artifact_prefix={out}/", "-print_final_stats=1",
                   str(corpus)], one)
    atheris.Fuzz()


def run(name: str, seconds: float, seed: int = 0) -> dict[str, object]:
    """Fuzz ``name`` for ``seconds`` in a child process; its executions, coverage and crashes.

    ``seed``: libFuzzer's random seed (0: a new one each run; ``make test`` fixes it, so a brief
    run explores the same inputs every time and a crash it finds is one it always finds)."""
    from tests.fuzz.harnesses import HARNESSES, REGRESSIONS

    harness = HARNESSES[name]
    with tempfile.TemporaryDirectory(prefix=f"ztsoc-fuzz-{name}-") as tmp:
        corpus = Path(tmp)
        for start in harness.seeds():
            (corpus / hashlib.sha1(start).hexdigest()).write_bytes(start)
        before = set((REGRESSIONS / name).glob("*")) if (REGRESSIONS / name).is_dir() else set()
        started = time.monotonic()
        # interpreted: atheris sees branches of Python code only, not of the compiled pcap hot path or
        # matcher (eventstore/native.py); the same sources, and every crash found is replayed compiled too
        proc = subprocess.run([sys.executable, "-m", "tests.fuzz", "--child", name, str(seconds), str(corpus), str(seed)],
                              capture_output=True, timeout=seconds + 120, cwd=Path(__file__).resolve().parents[2],
                              env={**os.environ, PURE_ENV: "1"})
        elapsed = time.monotonic() - started
        corpus_size = len(list(corpus.iterdir()))
    stats = _STATS.findall(proc.stderr)
    execs, cov, ft = (int(stats[-1][0]), int(stats[-1][1]), int(stats[-1][2])) if stats else (0, 0, 0)
    first_cov = int(stats[0][1]) if stats else 0
    m = re.search(rb"stat::number_of_executed_units: (\d+)", proc.stderr)
    if m:
        execs = int(m.group(1))
    new = sorted(str(p) for p in set((REGRESSIONS / name).glob("*")) - before) if (REGRESSIONS / name).is_dir() else []
    tail = proc.stderr.decode(errors="replace").strip().splitlines()[-25:]
    return {"harness": name, "seconds": round(elapsed, 1), "executions": execs, "coverage": cov, "features": ft,
            "coverage_at_start": first_cov, "corpus": corpus_size, "exit": proc.returncode, "crashes": new,
            "log_tail": tail if proc.returncode else []}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        _fuzz_in_process(argv[1], float(argv[2]), Path(argv[3]), int(argv[4]) if len(argv) > 4 else 0)
        return 0
    from tests.fuzz.harnesses import HARNESSES

    names = list(HARNESSES) if argv[:1] == ["--all"] else argv[:1]
    seconds = float(argv[1]) if len(argv) > 1 else 10.0
    if not names or names[0] not in HARNESSES:
        print(f"usage: python -m tests.fuzz NAME|--all [SECONDS]; harnesses: {', '.join(HARNESSES)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        result = run(name, seconds)
        print(json.dumps(result), flush=True)
        failed += result["exit"] != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
