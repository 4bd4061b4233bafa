"""The cyclic garbage collector paused while events stream through: one helper every package uses.

Events are flat dicts of strings, numbers and lists: they form no reference cycles, so the
collector finds nothing in them, yet thousands of them (or a rule set's tens of thousands of
compiled objects) made at once trigger generation scans over everything that lives: measured
~10-20 % of the sshd parse, half of reading the compiled-rule cache, a third of a detection
run's matching. Reference counting still frees every event once it is dropped.

Here (``eventstore`` imports none of ours, and every package may import it) so that the
collectors' pipeline, ``detections`` and the CLI share one implementation.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The collector off inside the block, restored on exit (only if it was on).

    Only around work that makes no reference cycles (or few, and bounded by the block): a
    reader keeping state objects that point at each other (flow tables) would otherwise grow
    until the block ends.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
