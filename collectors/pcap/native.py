"""The pcap hot path compiled with mypyc (the guard that keeps a stale build from running: ``eventstore/native.py``).

Why: metering packets is pure Python on plain locals, slots and bytes already, and that
ceiling (about 3.5x tshark's CPU per packet with every decoder on) is short of what a
sensor needs. mypyc, the compiler of the mypy project, turns these typed modules into C
extensions unchanged (no second source to keep in step): 2.1x faster on ``bench/pcap.py``
(1M packets, quiet machine: 168,536 -> 353,659 packets per CPU second; it prints which ran).

``setup.py`` compiles :data:`COMPILED` on install and :mod:`collectors.pcap` calls
``MODULES.install()`` on import: the compiled modules run only while they match their
sources, all or none. Both forms give the same events (``tests/test_pcap_native.py``
compares them on generated and damaged captures); the fuzz harnesses run interpreted.

A declaration only: ``setup.py`` loads it by path, so it imports nothing but the guard.
"""

from __future__ import annotations

from pathlib import Path

from eventstore.native import CompiledModules

#: the modules compiled, under collectors.pcap: the meter and everything it calls per packet
#: (the reader, link layers and IP decoding measured no faster compiled, so they stay as they are)
COMPILED: tuple[str, ...] = ("apps", "community_id", "dns", "flows", "http", "tcpstream", "tls")
MODULES = CompiledModules("collectors.pcap", Path(__file__).resolve().parent, COMPILED)
