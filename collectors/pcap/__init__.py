"""Network captures into ECS events: pcap / pcapng files and live interfaces.

``reader`` streams records, ``linktypes`` and ``decode`` find the 5-tuple, ``flows`` meters
bidirectional flows, ``apps`` with ``dns`` / ``http`` / ``tls`` / ``icmp`` decode what flows
carry, ``collector`` fits it all to the ingest contract (``soc ingest pcap``).
"""

from collectors.pcap import native

native.MODULES.install()  # the compiled hot path, or its sources when the build is stale (eventstore/native.py)
