"""Modules compiled with mypyc, and the guard that makes a stale build impossible to run.

A package names the typed modules of its hot path that ``setup.py`` compiles (mypyc turns
them into C extensions unchanged: no second source to keep in step) in a small declaration,
``<package>/native.py``, as a :class:`CompiledModules`; its ``__init__`` calls
:meth:`CompiledModules.install`. Two packages do today: ``collectors.pcap`` (the packet
meter) and ``detections.sigma`` (the rule matcher); their declarations say why and what it
gained.

How it is kept honest: ``setup.py`` (``make venv`` / ``make dev-deps``) writes, per package,
the digest of the sources it compiles to :data:`RECORD` next to them, and removes that record
again when the compile fails, so what is left runs interpreted. A compiled module shadows
its ``.py``, so an edited source would silently run the old code: on the package's import,
:meth:`~CompiledModules.install` compares the record with the sources and, when they differ
(or the build is partial, or has no record, or ``ZTSOC_PURE_PYTHON=1``), loads every one of
the package's compiled modules from its source instead: all or none, because compiled
modules call each other's classes directly and a mix would not run. Both forms are the same
code; each package's tests compare them on generated input (mypyc checks annotations at run
time where Python does not), and the fuzz harnesses run interpreted, where atheris sees the
branches.

Here, in ``eventstore``, because ``eventstore`` imports none of ours and every package may
import it (``ARCHITECTURE.md``; ``detections`` must not import ``collectors``), so both
packages share this one guard, as they share ``gc_pause``. This module imports only the
standard library: ``setup.py`` loads it, and the declarations, by path, without importing a
package. It is itself never compiled.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

#: written by setup.py next to a package's compiled sources: the digest of the sources that were compiled
RECORD = "_compiled.json"
#: set to 1 to run the interpreted modules whatever is built (fuzzing, comparisons, debugging)
PURE_ENV = "ZTSOC_PURE_PYTHON"


class CompiledModules:
    """The modules of one package that ``setup.py`` compiles, and which form of them runs.

    ``package``: its dotted name; ``folder``: where its sources are; ``names``: the compiled
    modules, under the package. ``reason`` is None once :meth:`install` found the build good
    (the compiled modules run), otherwise why the sources run instead.
    """

    def __init__(self, package: str, folder: Path, names: Sequence[str]) -> None:
        self.package = package
        self.folder = folder
        self.names = tuple(names)
        self.reason: str | None = "not decided yet"

    def sources_digest(self, folder: Path | None = None) -> str:
        """SHA-256 over the compiled modules' sources, in a fixed order."""
        where = self.folder if folder is None else folder
        h = hashlib.sha256()
        for name in self.names:
            h.update(name.encode() + b"\0")
            h.update((where / f"{name}.py").read_bytes())
        return h.hexdigest()

    def write_record(self, folder: Path | None = None) -> None:
        """Called by setup.py when mypyc has made the C code: what the build is built from."""
        where = self.folder if folder is None else folder
        record = {"digest": self.sources_digest(where), "modules": list(self.names)}
        (where / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    def forget_record(self, folder: Path | None = None) -> None:
        """Called by setup.py before it compiles and when a compile fails: no record, no compiled code run."""
        ((self.folder if folder is None else folder) / RECORD).unlink(missing_ok=True)

    def decide(self, folder: Path | None = None, environ: Mapping[str, str] | None = None) -> str | None:
        """None when the compiled modules can be used; otherwise why the sources run instead."""
        where = self.folder if folder is None else folder
        env = os.environ if environ is None else environ
        if env.get(PURE_ENV) == "1":
            return f"{PURE_ENV}=1"
        suffixes = importlib.machinery.EXTENSION_SUFFIXES
        built = [name for name in self.names if any((where / f"{name}{s}").exists() for s in suffixes)]
        if not built:
            return "not compiled (setup.py builds it on install; needs a C compiler)"
        if len(built) < len(self.names):
            return "partly compiled (missing: " + ", ".join(sorted(set(self.names) - set(built))) + ")"
        try:
            record = json.loads((where / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return f"no build record ({RECORD})"
        if not isinstance(record, dict) or record.get("digest") != self.sources_digest(where):
            return "sources changed since the build (make dev-deps rebuilds)"
        return None

    def install(self) -> None:
        """Decide once, at the package's import, which of the two runs."""
        self.reason = self.decide()
        if self.reason is not None and not any(isinstance(f, _SourcesFirst) and f.package == self.package
                                               for f in sys.meta_path):
            # just before the path finder (which would find the compiled module), so after any finder
            # that wraps the others' loaders: atheris's coverage instrumentation, whenever it was set up
            at = next((n for n, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder), 0)
            sys.meta_path.insert(at, _SourcesFirst(self))

    def status(self) -> str:
        """One line for benchmarks and diagnostics: which code runs."""
        return "compiled (mypyc)" if self.reason is None else f"interpreted: {self.reason}"


class _SourcesFirst:
    """Loads a package's compiled modules' names from their ``.py`` files (a meta path finder: only
    ``find_spec`` is needed, and ``importlib.abc`` is not otherwise imported by ``soc`` commands)."""

    def __init__(self, modules: CompiledModules) -> None:
        self.package = modules.package
        self.sources = {f"{modules.package}.{name}": modules.folder / f"{name}.py" for name in modules.names}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)
