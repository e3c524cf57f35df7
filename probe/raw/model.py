"""The data of the raw-socket measurements: RST forensics and TTL localisation (frozen, no logic).

Serialised by :func:`probe.serialize.as_dict` like every other result; ``probe forensics --json``
prints one :class:`ForensicsReport`::

    {
      "input": "https://x.com/", "server_name": "x.com", "ip": "10.23.64.10", "port": 443,
      "measurement_start_time": "2025-01-01 12:00:00", "test_runtime_s": 1.52,
      "rst_forensics": {
        "ip": "10.23.64.10", "port": 443, "server_name": "x.com", "interface": "eth0",
        "capture_failure": null,                  # the sniffer could not run: nothing else is known
        "failure": "connection_reset",            # the connection's fate (probe.steps.failures strings)
        "client_hello_sent": true, "client_hello_bytes": 517, "server_answered": false,
        "syn_ack": {"ttl": 63, "ip_id": 0, "hops_estimate": 2, "since_syn_ms": 0.186},
        "resets": [{"flags": "R", "ttl": 64, "ip_id": 0, "hops_estimate": 1, "seq": 3436018190,
                    "ack": 0, "window": 0, "phase": "after_client_hello",
                    "since_syn_ms": 1.742, "since_client_hello_ms": 0.124}],
        "verdict": "injected",                    # injected | end_host | none | unknown
        "signs": ["ttl_mismatch"],
        "elapsed_ms": 512.4
      },
      "localisation": {                           # null with --max-hops 0
        "max_hops": 30, "failure": null,
        "probes": [
          {"ttl": 1, "outcome": "time_exceeded", "router": "10.23.1.1", "reply_flags": null,
           "reply_ttl": 64, "reply_ip_id": 3, "icmp_code": 0, "since_client_hello_ms": 0.06,
           "syn_ack_ttl": 63, "failure": null},
          {"ttl": 2, "outcome": "reset", "router": null, "reply_flags": "RA",
           "reply_ttl": 64, "reply_ip_id": 0, "icmp_code": null, "since_client_hello_ms": 0.05,
           "syn_ack_ttl": 63, "failure": null}],
        "server_hops_estimate": 2, "server_ttl": null, "blocking_ttl": 2,
        "reset_source": "injected", "device_hop": 1, "device_address": "10.23.1.1"
      }
    }

Units are in the names (``_ms``, ``_s``, ``_bytes``); times are measured on kernel capture
timestamps. ``hops_estimate`` is the hop at which a packet was sent (1 = the first router),
assuming its sender started from the next common initial TTL (32, 64, 128 or 255) — an
estimate a censor can defeat by forging the TTL. The client's own address is never recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["injected", "end_host", "none", "unknown"]
"""Who sent the resets: a middlebox (``injected``), the server (``end_host``), nobody (``none``)."""
Phase = Literal["after_syn", "after_client_hello"]
HopOutcome = Literal["time_exceeded", "unreachable", "reset", "server", "silent", "connect_failed"]
"""What a TTL-limited ClientHello drew: ICMP time exceeded or unreachable from a router, a RST
(or FIN), an answer from the server (data, or an ACK covering the ClientHello), nothing, or no
attempt at all because the (full-TTL) connect failed."""
ResetSource = Literal["injected", "end_host"]


@dataclass(frozen=True, slots=True)
class SynAck:
    """The server's SYN-ACK, the reference every reset is compared with."""

    ttl: int
    ip_id: int
    hops_estimate: int
    since_syn_ms: float | None
    """Round trip of the handshake (``None`` when the SYN itself was not captured)."""


@dataclass(frozen=True, slots=True)
class ResetPacket:
    """One RST or FIN received on the connection, with what tells its sender apart."""

    flags: str
    """TCP flags as letters, scapy's spelling: ``R``, ``RA``, ``FA``, ``FPA`` …"""
    ttl: int
    ip_id: int
    hops_estimate: int
    seq: int
    ack: int
    window: int
    phase: Phase
    """``after_syn``: received before the ClientHello left; ``after_client_hello``: after it."""
    since_syn_ms: float | None
    since_client_hello_ms: float | None
    """``None`` for packets that came before the ClientHello (or when none was sent)."""


@dataclass(frozen=True, slots=True)
class RstForensics:
    """One connection to ``ip:port`` with a ClientHello for *server_name*, every packet captured."""

    ip: str
    port: int
    server_name: str
    interface: str | None
    """The interface captured on (the route's, unless given)."""
    capture_failure: str | None
    """Why nothing could be captured (``permission_denied``, ``network_unreachable`` …)."""
    failure: str | None
    """The connection's fate: ``None`` when the TLS handshake completed (certificates are not
    checked here), else the connect or handshake failure (``connection_reset`` …)."""
    client_hello_sent: bool
    client_hello_bytes: int
    server_answered: bool
    """TLS bytes came back (a ServerHello or an alert)."""
    syn_ack: SynAck | None
    resets: tuple[ResetPacket, ...]
    verdict: Verdict
    signs: tuple[str, ...]
    """Why: ``ttl_mismatch``, ``resets_disagree_ttl``, ``resets_disagree_ip_id``, ``no_syn_ack``,
    ``no_capture`` (see :mod:`probe.raw.packets`)."""
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class HopProbe:
    """One connection whose ClientHello left with IP TTL *ttl*."""

    ttl: int
    outcome: HopOutcome
    router: str | None
    """The source of an ICMP time-exceeded or unreachable quoting the ClientHello."""
    reply_flags: str | None
    """TCP flags of the RST/FIN when the outcome is ``reset``."""
    reply_ttl: int | None
    reply_ip_id: int | None
    icmp_code: int | None
    since_client_hello_ms: float | None
    syn_ack_ttl: int | None
    """This attempt's SYN-ACK TTL (the handshake itself runs at the normal TTL)."""
    failure: str | None
    """The connect failure when the outcome is ``connect_failed``."""


@dataclass(frozen=True, slots=True)
class Localisation:
    """TTL-limited retries (CenTrace): where on the path the ClientHello first draws the reset."""

    max_hops: int
    probes: tuple[HopProbe, ...]
    server_hops_estimate: int | None
    """The server's hop, from its SYN-ACK TTL."""
    server_ttl: int | None
    """The smallest TTL at which the server itself answered the ClientHello."""
    blocking_ttl: int | None
    """The smallest TTL at which the ClientHello drew a RST/FIN."""
    reset_source: ResetSource | None
    device_hop: int | None
    """The censor's hop: the reset's TTL estimate when it lies within ``blocking_ttl - 1``
    .. ``blocking_ttl`` (where the TTL-limited probes place it), else ``None``."""
    device_address: str | None
    """The router that answered time-exceeded at ``device_hop``, when one did."""
    failure: str | None
    """Why localisation stopped without an answer (``connect_failed: …``, ``capture: …``)."""


@dataclass(frozen=True, slots=True)
class ForensicsReport:
    """``probe forensics URL``: RST forensics, then TTL localisation, of one endpoint."""

    input: str
    server_name: str
    ip: str
    port: int
    measurement_start_time: str
    """UTC, OONI's ``YYYY-MM-DD HH:MM:SS``."""
    test_runtime_s: float
    rst_forensics: RstForensics
    localisation: Localisation | None
