"""Benchmark children run with bytecode, as an installed package has it.

pip compiles every module of a package it installs, and a source checkout writes ``__pycache__``
on its first run. Where ``PYTHONDONTWRITEBYTECODE`` is set (as in the shared sandbox), every
child process compiles the project's own modules from source each time it starts (~0.15-0.2 CPU s
of a ``soc scan``): a cost no installed ``soc`` pays, which falls on whichever side imports more
of our modules. The children's environment drops the variable and the project's packages are
compiled once, before any timing (into ``__pycache__`` beside the sources, which git ignores).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bytecode_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without ``PYTHONDONTWRITEBYTECODE``, the project's packages compiled for it."""
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    packages = sorted(str(p) for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests")
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], env=out, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out
