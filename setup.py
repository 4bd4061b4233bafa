"""Build step beyond pyproject.toml: the pcap hot path compiled with mypyc.

Why and how it is kept honest: ``collectors/pcap/native.py``. The compile is optional: with
no C compiler (or ``ZTSOC_PURE_PYTHON=1``) the project installs and runs interpreted, only
slower, and says so (``bench/pcap.py`` prints which code ran).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def _native() -> Any:
    spec = importlib.util.spec_from_file_location("_ztsoc_native", HERE / "collectors" / "pcap" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class OptionalBuildExt(build_ext):
    """A failed compile leaves the interpreted modules in place instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            print(f"ztsoc: the pcap hot path was not compiled ({exc}); it runs interpreted", file=sys.stderr)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"ztsoc: {ext.name} was not compiled ({exc})", file=sys.stderr)


def ext_modules() -> list[Any]:
    if os.environ.get("ZTSOC_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("ztsoc: mypyc is not available; the pcap hot path runs interpreted", file=sys.stderr)
        return []
    native = _native()
    folder = HERE / "collectors" / "pcap"
    native.write_record(folder)
    paths = [str(Path("collectors") / "pcap" / f"{name}.py") for name in native.COMPILED]
    modules: list[Any] = mypycify(paths, opt_level="3", debug_level="1")
    return modules


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
