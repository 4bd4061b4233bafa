"""``soc capture --iface IF``: live packets into flow, DNS, HTTP, TLS and ICMP events, written as flows end.

The fast engine reads a raw AF_PACKET socket (root or CAP_NET_RAW); ``--bpf`` is compiled
by ``tcpdump -ddd`` and attached in the kernel, or, without tcpdump, applied by ztsoc's
own small filter (``tcp|udp|icmp``, ``host ADDR``, ``port N``, ``and``) after parsing.
``--engine tshark`` runs tshark through pyshark for deep dissection. The summary reports
the kernel's own drop counter, so a capture that could not keep up says so (exit 1).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import typer

from soc_cli.context import StoreOption, use_store
from soc_cli.output import console, emit_doc, err_console, esc, safe


def capture(
    iface: str = typer.Option(..., "--iface", "-i", help="interface to capture on (e.g. eth0, lo)"),
    bpf: str = typer.Option(None, "--bpf", help="capture filter, tcpdump syntax (e.g. 'tcp port 443')"),
    engine: str = typer.Option("fast", "--engine", help="fast (AF_PACKET + ztsoc's parser) or tshark (pyshark)"),
    duration: float = typer.Option(None, "--duration", help="stop after this many seconds (default: until Ctrl-C)"),
    idle_timeout: float = typer.Option(120.0, "--idle-timeout", help="flow idle timeout, seconds"),
    active_timeout: float = typer.Option(1800.0, "--active-timeout", help="flow active timeout, seconds"),
    batch_size: int = typer.Option(2000, "--batch-size", help="events per store write"),
    max_flows: int = typer.Option(100_000, "--max-flows", min=1,
                                  help="open flows kept at most; past it the least recently seen are reported"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    store: str = StoreOption,
) -> None:
    """Capture live traffic into the store."""
    from collectors.live import ENGINES, LiveCapture
    from collectors.pcap.flows import MeterConfig

    if duration is not None and duration <= 0:
        raise ValueError("--duration must be positive")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    target = use_store(store)

    def write(events: list[dict[str, Any]]) -> int:
        return target.write_events(events).written

    config = MeterConfig(idle_timeout=idle_timeout, active_timeout=active_timeout, max_flows=max_flows)
    cap = LiveCapture(iface, write, bpf=bpf, engine=engine, config=config, batch_size=batch_size)
    previous = signal.signal(signal.SIGTERM, lambda *_: cap.stop())
    if sys.stderr.isatty() and not as_json:
        err_console.print(safe(f"capturing on {iface} ({engine}{', filter: ' + bpf if bpf else ''}); Ctrl-C to stop"))
    try:
        stats = cap.run(duration)
    except KeyboardInterrupt:
        stats = cap.stats
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        emit_doc(stats.as_dict())
    else:
        rate = stats.packets / stats.seconds if stats.seconds else 0.0
        console.print(f"[bold]{esc(iface)}[/]: {stats.packets:,} packets in {stats.seconds:.1f}s ({rate:,.0f}/s), "
                      f"{stats.events:,} events, {stats.written:,} new in the store, "
                      f"kernel drops {stats.kernel_drops:,}, problems {stats.problems:,}"
                      f"{f'; filter by {esc(stats.bpf_compiler)}' if stats.bpf else ''}")
    if stats.kernel_drops:
        sys.exit(1)


def register(app: typer.Typer) -> None:
    app.command("capture", help="Capture live traffic into flow, DNS, HTTP, TLS and ICMP events.")(capture)
