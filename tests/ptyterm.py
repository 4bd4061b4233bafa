"""Reading a program's output from a pseudo-terminal, for the tests that run ``soc`` on one."""

from __future__ import annotations

import os
import select


def read_some(fd: int, wait: float) -> bytes | None:
    """What the program wrote within ``wait`` seconds (``b""`` if nothing), ``None`` once it closed the terminal."""
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        return b""
    try:
        chunk = os.read(fd, 65536)
    except OSError:  # Linux reports the closed terminal as EIO
        return None
    return chunk or None
