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

from locales import _, format_number
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
    max_flows: int = typer.Option(10_000, "--max-flows", min=1,
                                  help="open flows kept at most; past it the least recently seen are reported"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    store: str = StoreOption,
) -> None:
    """Capture live traffic into the store."""
    from collectors.live import ENGINES, LiveCapture
    from collectors.pcap.flows import MeterConfig

    if duration is not None and duration <= 0:
        raise ValueError(_("--duration must be positive"))
    if engine not in ENGINES:
        raise ValueError(_("unknown engine {engine}: expected one of {engines}").format(
            engine=repr(engine), engines=", ".join(ENGINES)))
    target = use_store(store)

    def write(events: list[dict[str, Any]]) -> int:
        return target.write_events(events).written

    config = MeterConfig(idle_timeout=idle_timeout, active_timeout=active_timeout, max_flows=max_flows)
    cap = LiveCapture(iface, write, bpf=bpf, engine=engine, config=config, batch_size=batch_size)
    previous = signal.signal(signal.SIGTERM, lambda *_: cap.stop())
    if sys.stderr.isatty() and not as_json:
        how = _("{engine}, filter: {bpf}").format(engine=engine, bpf=bpf) if bpf else engine
        err_console.print(safe(_("capturing on {iface} ({how}); Ctrl-C to stop").format(iface=iface, how=how)))
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
        n = format_number
        said = _("{packets} packets in {seconds} s ({rate}/s), {events} events, {written} new in the store, "
                 "kernel drops {drops}, problems {problems}").format(
            packets=n(stats.packets), seconds=n(round(stats.seconds, 1)), rate=n(round(rate)), events=n(stats.events),
            written=n(stats.written), drops=n(stats.kernel_drops), problems=n(stats.problems))
        if stats.bpf:
            said += _("; filter by {compiler}").format(compiler=stats.bpf_compiler)
        console.print(f"[bold]{esc(iface)}[/]: {esc(said)}", highlight=False)
    if stats.kernel_drops:
        sys.exit(1)


def register(app: typer.Typer) -> None:
    app.command("capture", help="Capture live traffic into flow, DNS, HTTP, TLS and ICMP events.")(capture)
