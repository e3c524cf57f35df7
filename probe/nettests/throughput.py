"""Throughput: how fast a media host delivers, against the volunteer's line and the control.

Throttling is not blocking: WhatsApp's media host in Pakistan (July 2024, reference
``pakistan.md`` §1.2) answered, slowly, while text went through. A timeout says little about
that; a measured speed against a comparison does. This test downloads a bounded amount of a
URL (:mod:`probe.nettests.download`: at most *max_bytes*, at most *max_seconds*) and times
the body's arrival (bytes over time, ``x_samples``), then compares its speed with:

- the **reference**: the same kind of download from a host no censor shapes, named by the
  operator (``throughput_reference_url``): the volunteer's own line speed, measured in the same
  minute (``x_ratio_to_reference``);
- the **control**: the same URL downloaded by the control vantage (our helper's
  ``POST /x/throughput``, :mod:`probe.helper.throughput`): the host's speed from outside
  (``x_ratio_to_control``).

Verdict: *throttled* (mechanism ``http.throttle``, ``blocking`` ``http-diff``: the transfer
differs from the comparison, in speed) when the URL came at less than ``throttle_ratio`` of
the comparison speed — the reference's when measured, else the control's — and, when the
control answered, also at less than ``throttle_ratio`` of the control's (the host is not slow
for everyone); not throttled (``ok``) otherwise; undecided (``control.none``) without any
comparison. A download that fails before its body (DNS, connect, handshake) is left to the
web test: undecided, with that step's mechanism.

OONI has no such test: ``test_name`` ``throughput`` and every verdict key are reachprobe's
(``x_`` prefixed); the step records are OONI's shapes (``queries``, ``tcp_connect``,
``tls_handshakes``, ``requests``). The response bodies are not kept, only their counts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from probe import serialize
from probe.analysis.mechanism import dns_label, tcp_label, tls_label
from probe.mechanism import Mechanism
from probe.model import DNSQuery, OONIMeasurement, Summary, TCPConnect, TLSHandshake
from probe.nettests.base import Clock, Context, finish
from probe.nettests.download import Transfer, download
from probe.outcome import CONTROL_NOT_CONFIGURED
from probe.steps import dns, failures, tcp, tls, urls

TEST_NAME: Final = "throughput"
TEST_VERSION: Final = "0.1.0"
SERIES_PREFIX: Final = "throughput:"
CONTROL_PATH: Final = "x/throughput"


@dataclass(frozen=True, slots=True)
class ThroughputConfig:
    """Budgets, comparisons and trust of one measurement."""

    max_bytes: int = 1024 * 1024
    """Body bytes of each download (the URL's, the reference's; the control's too)."""
    max_seconds: float = 15.0
    """Seconds each download may take once connected."""
    reference_url: str | None = None
    control_url: str | None = None
    """Our helper's base URL (``None``: no control comparison)."""
    throttle_ratio: float = 0.2
    ca_file: Path | None = None
    step_timeout: float = 10.0
    """DNS, connect and TLS handshake, each."""
    allow_loopback: bool = False
    lookup: dns.BlockingLookup = dns.system_lookup


def series(url: str) -> str:
    """The target (series) of the throughput measurements of *url*."""
    return SERIES_PREFIX + url


@dataclass(slots=True)
class _Path:
    """One timed download and the steps that led to it."""

    url: str
    query: DNSQuery | None = None
    connect: TCPConnect | None = None
    tls: TLSHandshake | None = None
    transfer: Transfer | None = None

    @property
    def failure_before_body(self) -> tuple[str, str] | None:
        """``(layer, failure)`` of the step that stopped it before a response came."""
        if self.query is not None and self.query.failure:
            return "dns", self.query.failure
        if self.connect is not None and self.connect.status.failure:
            return "tcp", self.connect.status.failure
        if self.tls is not None and self.tls.failure:
            return "tls", self.tls.failure
        if self.transfer is None:
            return "dns", failures.DNS_NO_ANSWER
        return None


async def measure(url: str, *, context: Context, config: ThroughputConfig | None = None) -> OONIMeasurement:
    """Time a bounded download of *url* and compare it with the reference and the control.

    Raises:
        TargetError: *url* (or the reference URL) is not an http(s) URL with a valid host.
    """
    config = config or ThroughputConfig()
    urls.split_url(url)
    clock = Clock()

    async def probe_side() -> tuple[_Path, _Path | None]:
        # One after the other: two downloads at once would share the line they measure.
        target = await _timed(url, config, clock.elapsed, transaction_id=1)
        reference = None
        if config.reference_url is not None:
            reference = await _timed(config.reference_url, config, clock.elapsed, transaction_id=2)
        return target, reference

    (target, reference), control = await asyncio.gather(probe_side(), _control(url, config))
    keys, summary = report(target, reference, control, config)
    return finish(
        test_name=TEST_NAME, test_version=TEST_VERSION, input=url, test_keys=keys, summary=summary,
        clock=clock, context=context, target=series(url),
    )  # fmt: skip


async def _timed(url: str, config: ThroughputConfig, clock: Any, *, transaction_id: int) -> _Path:
    scheme, host, port = urls.split_url(url)
    path = _Path(url)
    try:
        ipaddress.ip_address(host)
        ip = host
    except ValueError:
        path.query = await dns.resolve_system(
            host, timeout=config.step_timeout, clock=clock, transaction_id=transaction_id,
            port=port, lookup=config.lookup,
        )  # fmt: skip
        usable = [
            a
            for a in path.query.addresses
            if config.allow_loopback or not ipaddress.ip_address(a).is_loopback
        ]
        if not usable:
            return path
        ip = usable[0]
    path.connect, connection = await tcp.connect(
        ip, port, timeout=config.step_timeout, clock=clock, transaction_id=transaction_id
    )
    if connection is None:
        return path
    address = urls.endpoint(ip, port)
    if scheme == "https":
        path.tls = await tls.handshake(
            connection, address=address, server_name=host,
            ssl_context=tls.client_contexts(config.ca_file).httpx,  # ALPN http/1.1: we speak it
            timeout=config.step_timeout, clock=clock, transaction_id=transaction_id,
        )  # fmt: skip
        if path.tls.failure is not None:
            await connection.close()
            return path
    path.transfer = await download(
        connection, url=url, address=address, max_bytes=config.max_bytes,
        max_seconds=config.max_seconds, clock=clock, transaction_id=transaction_id,
    )  # fmt: skip
    return path


async def _control(url: str, config: ThroughputConfig) -> dict[str, Any] | None:
    """The control's download of *url*: ``{"bytes_per_second", "body_bytes", "failure"}``, or
    ``{"failure": …, "bytes_per_second": None}`` when the control could not be asked; ``None``
    without a control."""
    if config.control_url is None:
        return None
    import httpx

    ask = {"url": url, "max_bytes": config.max_bytes, "max_seconds": config.max_seconds}
    endpoint = str(httpx.URL(config.control_url).join(CONTROL_PATH))
    context = tls.client_contexts(config.ca_file).httpx
    try:
        async with asyncio.timeout(config.max_seconds + 3 * config.step_timeout):
            # The answer comes once the helper's own download is over: up to max_seconds after
            # its lookup, connect and handshake.
            wait = httpx.Timeout(config.step_timeout, read=config.max_seconds + 3 * config.step_timeout)
            async with httpx.AsyncClient(verify=context, timeout=wait) as client:
                response = await client.post(endpoint, json=ask)
    except failures.NETWORK_EXCEPTIONS as exc:
        return {"bytes_per_second": None, "body_bytes": 0, "failure": failures.classify_http_round_trip(exc)}
    try:
        answer = json.loads(response.content) if response.status_code == 200 else None
    except ValueError:
        answer = None
    speed = answer.get("bytes_per_second") if isinstance(answer, dict) else None
    if not isinstance(answer, dict) or not (speed is None or isinstance(speed, int | float)):
        return {"bytes_per_second": None, "body_bytes": 0, "failure": failures.HTTP_REQUEST_FAILED}
    failure = answer.get("failure")
    body = answer.get("body_bytes")
    return {
        "bytes_per_second": float(speed) if speed is not None else None,
        "body_bytes": body if isinstance(body, int) else 0,
        "failure": failure if isinstance(failure, str) else None,
    }


def report(
    target: _Path, reference: _Path | None, control: dict[str, Any] | None, config: ThroughputConfig
) -> tuple[dict[str, Any], Summary]:
    """The test keys and the summary (the module's verdict rule)."""
    speed = target.transfer.bytes_per_second if target.transfer else None
    ref_speed = reference.transfer.bytes_per_second if reference and reference.transfer else None
    ctl_speed = control.get("bytes_per_second") if control else None
    to_ref = _ratio(speed, ref_speed)
    to_ctl = _ratio(speed, ctl_speed)
    stopped = target.failure_before_body
    throttled: bool | None = None
    blocking: bool | str | None = None
    accessible: bool | None = None
    control_failure = None if control is not None else CONTROL_NOT_CONFIGURED
    if stopped is not None:
        layer, failure = stopped
        mechanism = {"dns": dns_label, "tcp": tcp_label, "tls": tls_label}[layer](failure)
        accessible = False
    elif speed is None or (to_ref is None and to_ctl is None):
        mechanism = Mechanism.CONTROL_NONE if control is None else Mechanism.CONTROL_UNREACHABLE
        control_failure = control_failure or (control or {}).get("failure") or failures.HTTP_REQUEST_FAILED
    else:
        first = to_ref if to_ref is not None else to_ctl
        assert first is not None
        throttled = first < config.throttle_ratio and (to_ctl is None or to_ctl < config.throttle_ratio)
        blocking, accessible = ("http-diff", False) if throttled else (False, True)
        mechanism = Mechanism.HTTP_THROTTLE if throttled else Mechanism.OK
        control_failure = None
    paths = [p for p in (target, reference) if p is not None]
    keys: dict[str, Any] = {
        "queries": [serialize.as_dict(p.query) for p in paths if p.query],
        "tcp_connect": [serialize.as_dict(p.connect) for p in paths if p.connect],
        "tls_handshakes": [serialize.as_dict(p.tls) for p in paths if p.tls],
        "requests": [serialize.as_dict(p.transfer.transaction) for p in paths if p.transfer],
        "x_samples": [list(s) for s in target.transfer.samples] if target.transfer else [],
        "x_bytes_per_second": speed,
        "x_reference": _side(reference),
        "x_control": control,
        "x_ratio_to_reference": to_ref,
        "x_ratio_to_control": to_ctl,
        "x_throttle_ratio": config.throttle_ratio,
        "x_throttled": throttled,
        "x_max_bytes": config.max_bytes,
        "x_bytes_received": sum(p.transfer.bytes_received for p in paths if p.transfer),
        "x_blocking": blocking,
        "x_accessible": accessible,
        "x_mechanism": mechanism.value,
    }
    transaction = target.transfer.transaction if target.transfer else None
    summary = Summary(
        blocking=blocking,
        accessible=accessible,
        mechanism=mechanism,
        dns_failure=target.query.failure if target.query else None,
        tcp_failure=target.connect.status.failure if target.connect else None,
        tls_failure=target.tls.failure if target.tls else None,
        http_failure=transaction.failure if transaction else None,
        control_failure=control_failure,
    )
    return keys, summary


def _ratio(speed: float | None, comparison: float | None) -> float | None:
    if speed is None or not comparison:
        return None
    return float(f"{speed / comparison:.4g}")  # four significant digits: 0.0001 and 0.00004 differ


def _side(path: _Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    stopped = path.failure_before_body
    transaction = path.transfer.transaction if path.transfer else None
    return {
        "url": path.url,
        "bytes_per_second": path.transfer.bytes_per_second if path.transfer else None,
        "body_bytes": path.transfer.body_bytes if path.transfer else 0,
        "failure": stopped[1] if stopped else (transaction.failure if transaction else None),
    }
