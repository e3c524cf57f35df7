"""Measurements that need raw sockets (root or ``CAP_NET_RAW``): injection forensics, TTL localisation.

``reference/pakistan.md`` §1.2 asks the probe to record *how* a connection is reset — the
timing (after the SYN or after the ClientHello), the TTL and IP-ID of the RST against the
server's — and to localise the censoring device with TTL-limited retries (CenTrace).

Modules, one concept each:

- :mod:`probe.raw.model` — the results (frozen dataclasses) and their JSON shape
- :mod:`probe.raw.packets` — pure packet analysis: SYN-ACK, resets, ICMP → verdict
- :mod:`probe.raw.capture` — an ``AF_PACKET`` capture of one flow (no libpcap), privilege check
- :mod:`probe.raw.attempt` — one connection with a ClientHello under capture (optionally TTL-limited)
- :mod:`probe.raw.forensics` — who reset the connection: :func:`~probe.raw.forensics.rst_forensics`
- :mod:`probe.raw.localise` — where on the path: :func:`~probe.raw.localise.localise`
- :mod:`probe.raw.investigate` — both for one URL (``probe forensics``)

scapy is imported here and nowhere else in ``probe`` (and never in ``measurements``); the CLI
imports this package only when ``probe forensics`` runs.
"""

from __future__ import annotations
