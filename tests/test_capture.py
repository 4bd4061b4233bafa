"""``soc capture`` (soc_cli/commands/capture.py): its errors; the captures themselves are in test_live_capture.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _soc(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-m", "soc_cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_unknown_interface_is_a_usage_error() -> None:
    out = _soc("capture", "--iface", "nosuchif0", "--duration", "1")
    assert out.returncode == 2 and "no such interface: nosuchif0" in out.stderr


def test_unknown_engine_and_bad_duration_are_usage_errors() -> None:
    out = _soc("capture", "--iface", "lo", "--engine", "warp")
    assert out.returncode == 2 and "unknown engine 'warp'" in out.stderr
    out = _soc("capture", "--iface", "lo", "--duration", "0")
    assert out.returncode == 2 and "--duration must be positive" in out.stderr


def test_listed_in_help() -> None:
    out = _soc("--help")
    assert out.returncode == 0 and "capture" in out.stdout
