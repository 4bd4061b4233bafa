"""The compiled pcap hot path (collectors/pcap/native.py): built, guarded, and equal to its sources.

Two implementations of the same code must agree: the compiled meter (what a sensor runs)
and the interpreted one (what fuzzing sees) read the same generated and deliberately
damaged captures, and every event and every problem must be identical. mypyc checks
types at run time where Python does not, so a difference here is a real defect of one
or the other (a value of an unexpected type, an exception of another class).
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bench.pcapgen import frames
from collectors.base import read_all
from collectors.pcap import flows, native
from collectors.pcap.collector import PcapReader
from eventstore.native import PURE_ENV, RECORD
from tests.compiled_build import assert_compiled_where_a_compiler_is

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "pcaps" / "suricata-verify"
COMPILED = native.MODULES.reason is None
needs_build = pytest.mark.skipif(not COMPILED, reason=f"pcap hot path not compiled here: {native.MODULES.status()}")

#: the child's side: read every capture with the interpreted modules, one JSON document per capture
INTERPRETED = r"""
import sys
from pathlib import Path
from collectors.pcap import native
from tests.test_pcap_native import _summary
assert native.MODULES.reason is not None, native.MODULES.status()
for path in sys.argv[1:]:
    print(_summary(Path(path)))
"""


def _summary(path: Path) -> str:
    out = read_all(PcapReader(), path)
    return json.dumps({"events": out.events, "problems": [[p.position, p.reason, p.raw] for p in out.problems]},
                      sort_keys=True, default=str)


def _interpreted(paths: list[Path]) -> list[str]:
    env = {**os.environ, PURE_ENV: "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", INTERPRETED, *map(str, paths)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


def _damaged(path: Path, packets: int, seed: int) -> Path:
    """A generated capture (DNS, HTTP, TLS sessions) with random damage: flipped bytes in some
    frames, some frames cut short, some payloads replaced by noise, some frames duplicated."""
    rng = random.Random(seed)
    pack = struct.Struct("<IIII").pack
    us = 1_700_000_000 * 1_000_000
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for frame in frames(packets, concurrency=40, seed=seed):
            data = bytearray(frame)
            roll = rng.random()
            if roll < 0.08:
                for _ in range(rng.randint(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            elif roll < 0.11:
                del data[rng.randrange(14, len(data)):]
            elif roll < 0.13 and len(data) > 54:
                data[54:] = rng.randbytes(len(data) - 54)
            copies = 2 if rng.random() < 0.03 else 1  # a retransmission, as a capture shows it
            for _ in range(copies):
                fh.write(pack(us // 1_000_000, us % 1_000_000, len(data), len(data)))
                fh.write(bytes(data))
                us += rng.choice((10, 100, 1000, 3_000_000))  # some gaps long enough for timeouts
    return path


def test_the_hot_path_is_compiled_where_a_compiler_is() -> None:
    assert_compiled_where_a_compiler_is(native.MODULES, flows)


@needs_build
def test_compiled_and_interpreted_agree_on_generated_and_damaged_captures(tmp_path: Path) -> None:
    paths = [_damaged(tmp_path / f"damaged-{seed}.pcap", 4000, seed) for seed in range(6)]
    expected = _interpreted(paths)
    for path, want in zip(paths, expected, strict=True):
        got = _summary(path)
        assert got == want, f"{path.name}: the compiled and interpreted meters differ"
    assert any('"problems": [[' in line for line in expected), "the damage must reach the error paths"


@needs_build
def test_compiled_and_interpreted_agree_on_public_captures() -> None:
    """Suricata's verification captures (odd link types, broken packets), when ../shared/data is there."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data not present")
    paths = sorted(p for p in SHARED.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.stat().st_size < 2_000_000)
    expected = _interpreted(paths)
    differ = [p.name for p, want in zip(paths, expected, strict=True) if _summary(p) != want]
    assert differ == []


def _fake_build(folder: Path) -> None:
    for name in native.COMPILED:
        shutil.copy(Path(native.__file__).with_name(f"{name}.py"), folder / f"{name}.py")
        (folder / f"{name}{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    native.MODULES.write_record(folder)


def test_a_build_is_used_only_while_it_matches_its_sources(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    assert native.MODULES.decide(tmp_path, {}) is None
    assert native.MODULES.decide(tmp_path, {PURE_ENV: "1"}) == f"{PURE_ENV}=1"
    flows_py = tmp_path / "flows.py"
    flows_py.write_text(flows_py.read_text() + "\n# edited\n")
    assert native.MODULES.decide(tmp_path, {}) == "sources changed since the build (make dev-deps rebuilds)"
    native.MODULES.write_record(tmp_path)
    assert native.MODULES.decide(tmp_path, {}) is None
    (tmp_path / f"tls{importlib.machinery.EXTENSION_SUFFIXES[0]}").unlink()
    assert native.MODULES.decide(tmp_path, {}) == "partly compiled (missing: tls)"
    (tmp_path / RECORD).unlink()
    for so in tmp_path.glob("*.so"):
        so.unlink()
    assert (native.MODULES.decide(tmp_path, {}) or "").startswith("not compiled")


def test_when_the_guard_says_no_every_module_loads_from_its_source() -> None:
    """In a child told to run interpreted: the meta-path guard loads each compiled module's .py."""
    code = ("import json; from collectors.pcap import native;"
            "import collectors.pcap.apps, collectors.pcap.community_id, collectors.pcap.dns, collectors.pcap.flows,"
            " collectors.pcap.http, collectors.pcap.tcpstream, collectors.pcap.tls;"
            "import sys; print(json.dumps([sys.modules['collectors.pcap.' + n].__file__ for n in native.COMPILED]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, PURE_ENV: "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout)
    assert [Path(f).name for f in files] == [f"{n}.py" for n in native.COMPILED]
