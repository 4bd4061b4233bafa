"""The pcap hot path compiled with mypyc, and the guard that makes a stale build impossible to run.

Why: metering packets is pure Python on plain locals, slots and bytes already, and that
ceiling (about 3.5x tshark's CPU per packet with every decoder on) is short of what a
sensor needs. mypyc, the compiler of the mypy project, turns these typed modules into C
extensions unchanged (no second source to keep in step): 2.1x faster on ``bench/pcap.py``
(1M packets, quiet machine: 168,536 -> 353,659 packets per CPU second; it prints which ran).

How: ``setup.py`` compiles :data:`COMPILED` when the project is installed (``make venv`` /
``make dev-deps``) and writes the digest of their sources to :data:`RECORD`. A compiled
module shadows its ``.py``, so an edited source would silently run the old code; on import
of :mod:`collectors.pcap`, :func:`install` compares the digest with the sources and, when
they differ (or the build is partial, or ``ZTSOC_PURE_PYTHON=1``), loads every one of
these modules from its source instead: all or none, because compiled modules call each
other's classes directly and a mix would not run. The interpreted modules are the same
code, so both give the same events (``tests/test_pcap_native.py`` compares them on
generated and damaged captures); the fuzz harnesses run interpreted, where atheris can
see the branches.

This module never imports the package (``setup.py`` loads it by path) and is itself never
compiled.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

#: the modules compiled, under collectors.pcap: the meter and everything it calls per packet
#: (the reader, link layers and IP decoding measured no faster compiled, so they stay as they are)
COMPILED: tuple[str, ...] = ("apps", "community_id", "dns", "flows", "http", "tcpstream", "tls")
PACKAGE = "collectors.pcap"
HERE = Path(__file__).resolve().parent
#: written by setup.py next to the sources: the digest of the sources that were compiled
RECORD = "_compiled.json"
#: set to 1 to run the interpreted modules whatever is built (fuzzing, comparisons, debugging)
PURE_ENV = "ZTSOC_PURE_PYTHON"


def sources_digest(folder: Path = HERE, names: Sequence[str] = COMPILED) -> str:
    """SHA-256 over the compiled modules' sources, in a fixed order."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0")
        h.update((folder / f"{name}.py").read_bytes())
    return h.hexdigest()


def write_record(folder: Path = HERE) -> None:
    """Called by setup.py before it compiles: what the build is built from."""
    record = {"digest": sources_digest(folder), "modules": list(COMPILED)}
    (folder / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def decide(folder: Path = HERE, environ: dict[str, str] | None = None) -> str | None:
    """None when the compiled modules can be used; otherwise why the sources run instead."""
    env = os.environ if environ is None else environ
    if env.get(PURE_ENV) == "1":
        return f"{PURE_ENV}=1"
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    built = [name for name in COMPILED if any((folder / f"{name}{s}").exists() for s in suffixes)]
    if not built:
        return "not compiled (setup.py builds it on install; needs a C compiler)"
    if len(built) < len(COMPILED):
        return "partly compiled (missing: " + ", ".join(sorted(set(COMPILED) - set(built))) + ")"
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"no build record ({RECORD})"
    if not isinstance(record, dict) or record.get("digest") != sources_digest(folder):
        return "sources changed since the build (make dev-deps rebuilds)"
    return None


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Loads the compiled modules' names from their ``.py`` files."""

    def __init__(self, folder: Path) -> None:
        self.names = {f"{PACKAGE}.{name}": folder / f"{name}.py" for name in COMPILED}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        source = self.names.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


#: why the sources run (None: the compiled modules do); set by :func:`install`
REASON: str | None = "not decided yet"


def install() -> None:
    """Decide once, at the package's import, which of the two runs."""
    global REASON
    REASON = decide()
    if REASON is not None and not any(isinstance(f, _SourcesFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst(HERE))


def status() -> str:
    """One line for benchmarks and ``soc`` diagnostics: which code meters packets."""
    return "compiled (mypyc)" if REASON is None else f"interpreted: {REASON}"
