"""What the tests of every compiled package check of its build (``eventstore/native.py``)."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
from types import ModuleType

import pytest

from eventstore.native import PURE_ENV, CompiledModules


def assert_compiled_where_a_compiler_is(modules: CompiledModules, module: ModuleType) -> None:
    """`make dev-deps` compiles the package's modules; a missing or stale build runs slower and must
    not go unnoticed (``module``: one of them, which must be the extension)."""
    if os.environ.get(PURE_ENV) == "1" or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("interpreted on purpose, or no C compiler")
    assert modules.reason is None, f"{modules.status()}: run `make dev-deps`"
    assert module.__file__ is not None
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
