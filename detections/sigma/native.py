"""The Sigma matcher compiled with mypyc (the guard that keeps a stale build from running: ``eventstore/native.py``).

Why: matching is the hot loop of ``soc scan`` and ``soc detect run`` (each event walked once,
then the closures of its candidate rules), already plain Python on dicts, tuples and strings.
mypyc compiles ``matcher.py`` unchanged; see ``tests/test_sigma_native.py`` for what is
checked and the commit that compiled it for the figures.

``setup.py`` compiles :data:`COMPILED` on install and :mod:`detections.sigma` calls
``MODULES.install()`` on import: the compiled matcher runs only while it matches its source.
Both forms give the same matches (``tests/test_sigma_native.py`` compares them on generated
rules and hostile events: mypyc checks annotations at run time where Python does not, so an
event value of an unexpected type must never reach an annotation that does not admit it);
the fuzz harness ``sigma_match`` runs interpreted.

A declaration only: ``setup.py`` loads it by path, so it imports nothing but the guard.
"""

from __future__ import annotations

from pathlib import Path

from eventstore.native import CompiledModules

#: the modules compiled, under detections.sigma
COMPILED: tuple[str, ...] = ("matcher",)
MODULES = CompiledModules("detections.sigma", Path(__file__).resolve().parent, COMPILED)
