"""Build step beyond pyproject.toml: the hot paths compiled with mypyc.

Which modules, per package: the declarations in :data:`DECLARATIONS`; why and how a build is
kept honest: ``eventstore/native.py``. The compile is optional: with no C compiler (or
``ZTSOC_PURE_PYTHON=1``) the project installs and runs interpreted, only slower, and says so
(``bench/pcap.py``, ``bench/scan.py`` and ``bench/sigma.py`` print which code ran). Each package is
compiled on its own, so one that fails to compile (mypyc or the C compiler) leaves no build record
and runs interpreted, while the other stays compiled.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
#: each package's declaration of its compiled modules (a ``CompiledModules`` named ``MODULES``)
DECLARATIONS = ("collectors/pcap/native.py", "detections/sigma/native.py")


def _load(name: str, path: Path) -> ModuleType:
    """A module by path, without importing its package (the build has none of our dependencies)."""
    spec = importlib.util.spec_from_file_location(name, path)
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
            print(f"ztsoc: the hot paths were not compiled ({exc}); they run interpreted", file=sys.stderr)
            for ext in self.extensions:
                self._forget(ext)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"ztsoc: {ext.name} was not compiled ({exc}); its package runs interpreted", file=sys.stderr)
            self._forget(ext)

    def _forget(self, ext: Any) -> None:
        """No build record for the package of a module that failed: what is left of it runs interpreted."""
        modules = getattr(ext, "ztsoc_modules", None)
        if modules is not None:
            modules.forget_record()
            built = Path(self.build_lib, *modules.package.split("."))
            if built.is_dir():
                modules.forget_record(built)


def ext_modules() -> list[Any]:
    # loaded under its own name: the declarations import it from there
    _load("eventstore.native", HERE / "eventstore" / "native.py")
    declared = [_load(f"_ztsoc_native_{n}", HERE / path).MODULES for n, path in enumerate(DECLARATIONS)]
    for modules in declared:
        modules.forget_record()  # written again below once mypyc has made its C code
    if os.environ.get("ZTSOC_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("ztsoc: mypyc is not available; the hot paths run interpreted", file=sys.stderr)
        return []
    out: list[Any] = []
    for modules in declared:
        folder = modules.folder.relative_to(HERE)
        paths = [str(folder / f"{name}.py") for name in modules.names]
        try:  # mypyc exits (SystemExit) on a type error
            # errors of the modules they import are not theirs: the build has none of our dependencies
            # (pySigma...), and what they lack is Any there (detections/sigma/ir.py does not type-check so)
            exts: list[Any] = mypycify(["--follow-imports=silent", *paths], opt_level="3", debug_level="1")
        except (Exception, SystemExit) as exc:
            print(f"ztsoc: {modules.package} was not compiled by mypyc ({exc!r}); it runs interpreted",
                  file=sys.stderr)
            continue
        modules.write_record()
        for ext in exts:
            ext.ztsoc_modules = modules
        out.extend(exts)
    return out


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
