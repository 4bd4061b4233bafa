"""Every fuzz harness runs briefly (coverage-guided, atheris) and every crash ever found is replayed.

``make fuzz`` runs the same harnesses for minutes each (``python -m tests.fuzz --all SECONDS``);
here each gets ``ZTSOC_FUZZ_SECONDS`` (default 3) so the whole file stays near a minute or two.
A crash found here is written to ``tests/fuzz/regressions/<harness>/`` and fails the run:
fix the parser, keep the file, and it is a regression test from then on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.__main__ import run
from tests.fuzz.harnesses import HARNESSES, REGRESSIONS

SECONDS = float(os.environ.get("ZTSOC_FUZZ_SECONDS", "3"))
FOUND = sorted(p for p in REGRESSIONS.glob("*/*") if p.is_file() and p.parent.name in HARNESSES)


@pytest.mark.parametrize("path", FOUND, ids=[f"{p.parent.name}/{p.name[:20]}" for p in FOUND])
def test_every_crash_found_stays_fixed(path: Path) -> None:
    HARNESSES[path.parent.name](path.read_bytes())  # raises (fails) if the parser breaks again


def test_the_known_crashes_are_kept() -> None:
    """The 6-byte TLS header, the GTP-U extension of length 0 (a hang), luqum's fuzzy degree, EVTX names."""
    assert {p.parent.name for p in FOUND} >= {"link_layers", "lucene", "evtx_mapping"}
    HARNESSES["tls"](bytes.fromhex("160301000001"))


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_harness_runs_without_a_crash(name: str) -> None:
    result = run(name, SECONDS, seed=1)
    assert result["crashes"] == [] and result["exit"] == 0, result["log_tail"]
    assert isinstance(result["executions"], int) and result["executions"] > 0
    assert isinstance(result["coverage"], int) and result["coverage"] > 0
