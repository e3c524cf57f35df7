"""The Tor test (OONI ts-023, ``tor``): can the directory authorities and bridges be reached?

Each target is measured by its protocol, as the spec says:

- ``or_port_dirauth`` (a directory authority's OR port) and ``or_port`` (a bridge's): a TCP
  connect, then a TLS handshake. Tor's TLS is not the web's: relays present self-signed
  certificates with made-up names, so no certificate is verified (``no_tls_verify``), and the
  ClientHello carries the made-up ``www.<random>.com`` SNI a Tor client sends. The handshake
  completing is what the spec checks;
- ``dir_port`` (a directory authority's directory port): ``GET
  /tor/status-vote/current/consensus.z`` over HTTP, the first 256 bytes of the body kept;
- ``obfs4`` (and any other protocol): a TCP connect only. reachprobe does not speak obfs4,
  so an obfs4 bridge counts as accessible when its port accepts a connection, and its
  target says so (``x_obfs4_handshake: false``).

The ``test_keys`` are the spec's: ``targets`` keyed by target id (the address for a
directory authority, ``sha256(address + fingerprint)`` for a bridge), each with ``agent``,
``failure``, ``network_events``, ``queries``, ``requests``, ``summary`` (``connect`` and
``handshake`` failures), ``target_address``, ``target_name``, ``target_protocol``,
``target_source``, ``tcp_connect`` and ``tls_handshakes``; then ``<protocol>_total`` and
``<protocol>_accessible`` per protocol, and our summary (``x_blocking``, ``x_accessible``,
``x_mechanism``). A target with a ``source`` is private (an operator's
unlisted bridge): as OONI's probe does, every IP address in its records is scrubbed and its
``target_address`` is ``[scrubbed]``, so publishing the measurement does not burn it.

The verdict (:class:`~probe.model.Summary`) follows OONI's anomaly rule: blocked when some
protocol with targets has none accessible.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from probe.analysis.mechanism import http_label, tcp_label
from probe.errors import ConfigError
from probe.mechanism import Mechanism
from probe.model import OONIMeasurement, Summary
from probe.nettests import tlsendpoint
from probe.nettests.base import Clock, Context, finish
from probe.nettests.endpoints import EndpointList
from probe.nettests.urlgetter import summary_keys
from probe.steps import failures, http, tcp
from probe.steps.urls import endpoint, parse_endpoint

TEST_NAME: Final = "tor"
TEST_VERSION: Final = "0.4.0"
"""probe-cli's version of the experiment whose keys we write (spec 2020-01-30-001)."""
PROTOCOLS: Final = ("dir_port", "obfs4", "or_port_dirauth", "or_port")
"""The spec's protocols, in the order of its ``<protocol>_total`` keys."""
DIRAUTH_PROTOCOLS: Final = frozenset({"dir_port", "or_port_dirauth"})
CONSENSUS_PATH: Final = "/tor/status-vote/current/consensus.z"
DIR_BODY_LIMIT: Final = 256
"""Bytes of the consensus kept (probe-cli keeps a 256-byte snapshot: the start proves it came)."""
SCRUBBED: Final = "[scrubbed]"


@dataclass(frozen=True, slots=True)
class TorTarget:
    """One thing to reach: a directory authority's port or a bridge."""

    address: str
    """``ip:port`` (``[v6]:port``)."""
    protocol: str
    name: str = ""
    fingerprint: str = ""
    source: str = ""
    """Where the target came from; non-empty means private (scrubbed in the output)."""

    @property
    def id(self) -> str:
        """The spec's target id: ``sha256(address + fingerprint)`` for a bridge with a
        fingerprint, else the address (as OONI keys directory authorities)."""
        if not self.fingerprint or self.protocol in DIRAUTH_PROTOCOLS:
            return self.address
        return hashlib.sha256(self.address.encode() + self.fingerprint.encode()).hexdigest()

    @property
    def private(self) -> bool:
        """Whether the output must not carry its address (OONI: a target with a source)."""
        return bool(self.source)


@dataclass(frozen=True, slots=True)
class TorConfig:
    """Timeouts and parallelism of one run."""

    timeout: float = 10.0
    """Seconds for each step (connect, TLS handshake); the consensus fetch gets 15."""
    http_timeout: float = 15.0
    parallelism: int = 4


async def measure(
    targets: Sequence[TorTarget], *, context: Context, config: TorConfig = TorConfig()
) -> OONIMeasurement:
    """Measure every target (at most ``parallelism`` at a time) and build the measurement.

    Raises:
        ValueError: a target's address is not ``ip:port``, or two targets share an id.
    """
    ids = [t.id for t in targets]
    if len(set(ids)) != len(ids):
        raise ValueError("two targets have the same id (address and fingerprint)")
    for target in targets:
        parse_endpoint(target.address)
    clock = Clock()
    gate = asyncio.Semaphore(max(1, config.parallelism))

    async def one(index: int, target: TorTarget) -> dict[str, Any]:
        async with gate:
            return await measure_target(target, clock=clock, config=config, transaction_id=index + 1)

    results = await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)))
    keyed = {t.id: r for t, r in zip(targets, results, strict=True)}
    summary = summarize(keyed.values())
    test_keys = {**totals(keyed.values()), "targets": keyed, **summary_keys(summary)}
    return finish(
        test_name=TEST_NAME,
        test_version=TEST_VERSION,
        input=None,
        test_keys=test_keys,
        summary=summary,
        clock=clock,
        context=context,
        target=TEST_NAME,
    )


async def measure_target(
    target: TorTarget, *, clock: Clock, config: TorConfig, transaction_id: int
) -> dict[str, Any]:
    """One target's entry of ``targets``: its steps, failure and summary (scrubbed when private)."""
    ip, port = parse_endpoint(target.address)
    summary: dict[str, dict[str, str | None]] = {}
    extra: dict[str, Any] = {}
    if target.protocol in ("or_port", "or_port_dirauth"):
        attempt = await tlsendpoint.attempt(
            ip, port, server_name=tlsendpoint.random_hostname(), ssl_context=_UNVERIFIED,
            timeout=config.timeout, clock=clock.elapsed, transaction_id=transaction_id, no_tls_verify=True,
        )  # fmt: skip
        steps = tlsendpoint.records([attempt.connect], [attempt.handshake] if attempt.handshake else [])
        failure = attempt.failure
        summary["connect"] = {"failure": attempt.connect.status.failure}
        if attempt.handshake is not None:
            summary["handshake"] = {"failure": attempt.handshake.failure}
    elif target.protocol == "dir_port":
        connect, connection = await tcp.connect(
            ip, port, timeout=config.timeout, clock=clock.elapsed, transaction_id=transaction_id
        )
        requests = []
        if connection is not None:
            requests.append(
                await http.fetch(
                    f"http://{endpoint(ip, port)}{CONSENSUS_PATH}",
                    address=ip,
                    ssl_context=_UNVERIFIED,
                    timeout=config.http_timeout,
                    clock=clock.elapsed,
                    transaction_id=transaction_id,
                    body_limit=DIR_BODY_LIMIT,
                    connection=connection,
                )
            )
        steps = tlsendpoint.records([connect], requests=requests)
        failure = connect.status.failure or (requests[0].failure if requests else None)
        summary["connect"] = {"failure": connect.status.failure}
    else:
        connect, connection = await tcp.connect(
            ip, port, timeout=config.timeout, clock=clock.elapsed, transaction_id=transaction_id
        )
        if connection is not None:
            await connection.close()
        steps = tlsendpoint.records([connect])
        failure = connect.status.failure
        summary["connect"] = {"failure": failure}
        if target.protocol == "obfs4":
            extra["x_obfs4_handshake"] = False
    entry: dict[str, Any] = {
        "agent": "redirect",
        "failure": failure,
        "network_events": steps["network_events"],
        "queries": None,
        "requests": steps["requests"],
        "summary": summary,
        "tcp_connect": steps["tcp_connect"],
        "tls_handshakes": steps["tls_handshakes"],
        **extra,
    }
    if target.private:
        # Endpoints first (``ip:port`` → ``[scrubbed]``, as OONI's scrubber), then bare addresses.
        text = json.dumps(entry).replace(json.dumps(target.address)[1:-1], SCRUBBED)
        entry = json.loads(failures.scrub(text))
    entry["target_address"] = SCRUBBED if target.private else target.address
    if target.name:
        entry["target_name"] = target.name
    entry["target_protocol"] = target.protocol
    if target.source:
        entry["target_source"] = target.source
    return entry


_UNVERIFIED: Final = tlsendpoint.unverified_context()


def targets_from(endpoints: EndpointList) -> list[TorTarget]:
    """The targets of a ``[[tor]]`` list: one per entry and port, the entry's role as protocol.

    ``params``: ``fingerprint`` (a bridge's), ``source`` (non-empty: a private bridge).

    Raises:
        ConfigError: an entry's host is not an IP address, it has no port, or its role is
            not one of the spec's protocols.
    """
    targets = []
    for entry in endpoints.endpoints:
        if not entry.is_address:
            raise ConfigError(f"{entry.where}: tor.host: {entry.host!r} is not an IP address")
        if not entry.ports:
            raise ConfigError(f"{entry.where}: tor.ports: at least one port is needed")
        if entry.role not in PROTOCOLS:
            raise ConfigError(f"{entry.where}: tor.role: {entry.role!r} is not one of {', '.join(PROTOCOLS)}")
        for port in entry.ports:
            targets.append(
                TorTarget(
                    address=endpoint(entry.host, port),
                    protocol=entry.role,
                    name=entry.name,
                    fingerprint=str(entry.params.get("fingerprint", "")),
                    source=str(entry.params.get("source", "")),
                )
            )
    return targets


def totals(entries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """``<protocol>_total`` and ``<protocol>_accessible`` for each of the spec's protocols."""
    counts: dict[str, int] = {}
    listed = list(entries)
    for protocol in PROTOCOLS:
        mine = [e for e in listed if e["target_protocol"] == protocol]
        counts[f"{protocol}_total"] = len(mine)
        counts[f"{protocol}_accessible"] = sum(e["failure"] is None for e in mine)
    return counts


def summarize(entries: Iterable[dict[str, Any]]) -> Summary:
    """The verdict: blocked when a protocol with targets has none accessible (OONI's anomaly).

    ``blocking`` is ``"tcp_ip"`` when the failed targets of those protocols mostly failed
    to connect, ``"http-failure"`` when they connected and their handshake or fetch failed;
    ``mechanism`` names that commonest failure (no control: ``tls.reset``, not ``.sni``).
    """
    listed = list(entries)
    if not listed:
        return Summary(blocking=None, accessible=None)
    blocked = [
        protocol
        for protocol in PROTOCOLS
        if any(e["target_protocol"] == protocol for e in listed)
        and all(e["failure"] is not None for e in listed if e["target_protocol"] == protocol)
    ]
    tcp_failure = next((f for e in listed if (f := e["summary"]["connect"]["failure"]) is not None), None)
    tls_failure = next(
        (f for e in listed if (f := e["summary"].get("handshake", {}).get("failure")) is not None), None
    )
    if not blocked:
        return Summary(
            blocking=False,
            accessible=True,
            mechanism=Mechanism.OK,
            tcp_failure=tcp_failure,
            tls_failure=tls_failure,
        )
    labels = Counter(_label(e) for e in listed if e["target_protocol"] in blocked)
    (mechanism, _), *_ = labels.most_common()
    blocking = "tcp_ip" if mechanism.layer is not None and mechanism.layer.value == "tcp" else "http-failure"
    return Summary(
        blocking=blocking,
        accessible=False,
        mechanism=mechanism,
        tcp_failure=tcp_failure,
        tls_failure=tls_failure,
    )


def _label(entry: dict[str, Any]) -> Mechanism:
    connect = entry["summary"]["connect"]["failure"]
    if connect is not None:
        return tcp_label(connect)
    handshake = entry["summary"].get("handshake", {}).get("failure")
    if handshake is not None:
        return tls_seen_label(handshake)
    return http_label(entry["failure"])


def tls_seen_label(failure: str) -> Mechanism:
    """A handshake's failure without a control to attribute it: reset, timeout or EOF/alert."""
    if failure == failures.CONNECTION_RESET:
        return Mechanism.TLS_RESET
    if failure in (failures.GENERIC_TIMEOUT, failures.TIMED_OUT):
        return Mechanism.TLS_TIMEOUT
    return Mechanism.TLS_EOF
