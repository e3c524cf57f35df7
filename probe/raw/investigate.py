"""One URL, end to end: resolve, RST forensics, then TTL localisation (``probe forensics``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from probe.errors import TargetError
from probe.model import OONI_TIME_FORMAT
from probe.raw.forensics import ForensicsConfig, check_endpoint, rst_forensics
from probe.raw.localise import LocaliseConfig, localise
from probe.raw.model import ForensicsReport
from probe.steps import dns, urls
from probe.steps.clock import relative_clock

RESOLVE_TIMEOUT_S = 5.0


async def investigate(
    *,
    url: str,
    address: str | None = None,
    forensics: ForensicsConfig | None = None,
    localisation: LocaliseConfig | None = None,
) -> ForensicsReport:
    """Who resets *url*'s TLS connections, and where on the path.

    The URL's host is the SNI; its port (443 by default) the endpoint's. *address* is the IPv4
    address to measure; without it the system resolver's first IPv4 answer. *localisation*
    ``None`` skips the TTL-limited probing.

    Raises:
        TargetError: the URL is malformed or not ``https``, its host has no IPv4 address (the
            resolver's failure string says why), or *address* is not IPv4.
    """
    host, port = parse_target(url, address)
    ip = address or await resolve_ipv4(host)
    started_at = datetime.now(UTC).strftime(OONI_TIME_FORMAT)
    started = time.monotonic()
    resets = await rst_forensics(ip, port, host, config=forensics)
    located = None
    if localisation is not None and resets.capture_failure is None:
        located = await localise(ip, port, host, config=localisation)
    return ForensicsReport(
        input=url,
        server_name=host,
        ip=ip,
        port=port,
        measurement_start_time=started_at,
        test_runtime_s=round(time.monotonic() - started, 3),
        rst_forensics=resets,
        localisation=located,
    )


def parse_target(url: str, address: str | None = None) -> tuple[str, int]:
    """The host (the SNI) and port of an ``https`` *url*, with *address* checked when given.

    Raises:
        TargetError: the URL is malformed or not ``https``, or *address* is not IPv4.
    """
    scheme, host, port = urls.split_url(url)
    if scheme != "https":
        raise TargetError(f"{url!r}: forensics sends a TLS ClientHello, give an https:// URL")
    if address is not None:
        check_endpoint(address, port, host)
    return host, port


async def resolve_ipv4(host: str, *, timeout: float = RESOLVE_TIMEOUT_S) -> str:
    """The system resolver's first IPv4 address for *host* (an IPv4 literal as is).

    Raises:
        TargetError: no IPv4 address; the message carries the resolver's failure string.
    """
    query = await dns.resolve_system(host, timeout=timeout, clock=relative_clock(), port=443)
    for answer in query.answers:
        if answer.answer_type == "A" and answer.ipv4:
            return answer.ipv4
    why = query.failure or "no IPv4 address"
    raise TargetError(f"cannot resolve {host!r}: {why} (give --address)")
