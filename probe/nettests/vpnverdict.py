"""What a VPN handshake's outcome says: the :class:`~probe.model.Summary` of one endpoint.

No control measures the endpoint from elsewhere, so a failure is an anomaly, as OONI reads its
``openvpn`` results (a server may be down); the mechanism says how it failed. A UDP handshake
that drew nothing is ``vpn.timeout`` (``blocking`` ``tcp_ip``: IP-level, the only level UDP
has); an ICMP unreachable is ``vpn.refused``. Over TCP, a connect that failed is the TCP
step's label (``tcp.*``, ``tcp_ip``); once connected, the handshake's packet drawing a reset
or a close is ``vpn.reset`` (the payload, not the address, drew it: DPI), silence is
``vpn.timeout``, and both are ``http-failure`` (a failure after the connection, as Web
Connectivity files a TLS one). An answer failing the protocol's checks is
``vpn.bad_response``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from probe import serialize
from probe.analysis.mechanism import dns_label, tcp_label
from probe.mechanism import Mechanism
from probe.model import Summary
from probe.steps import dns, failures
from probe.steps.clock import Clock


async def resolve(
    host: str, *, timeout: float, clock: Clock
) -> tuple[str | None, list[dict[str, Any]] | None, str | None]:
    """Where *host* (an IP address, or a name a provider publishes) is: ``(ip, queries, failure)``.

    An address is itself, without a query (``queries`` ``None``); a name is looked up with
    ``getaddrinfo`` (IPv4 first), the query kept as df-002 ``queries``; ``ip`` is ``None``
    when the lookup failed (``failure`` says how).
    """
    try:
        return str(ipaddress.ip_address(host)), None, None
    except ValueError:
        pass
    query = await dns.resolve_system(host, timeout=timeout, clock=clock)
    addresses = [a.ipv4 for a in query.answers if a.ipv4] + [a.ipv6 for a in query.answers if a.ipv6]
    failure = None if addresses else (query.failure or failures.DNS_NO_ANSWER)
    return (addresses[0] if addresses else None), serialize.as_dict([query]), failure


def summary(
    *, transport: str, connect_failure: str | None, failure: str | None, dns_failure: str | None = None
) -> Summary:
    """The verdict of one handshake over *transport* (``udp``/``tcp``); *dns_failure*: the endpoint's
    name did not resolve (``blocking`` ``dns``)."""
    if dns_failure is not None:
        return Summary(
            blocking="dns", accessible=False, mechanism=dns_label(dns_failure), dns_failure=dns_failure
        )
    if failure is None:
        return Summary(blocking=False, accessible=True, mechanism=Mechanism.OK)
    if connect_failure is not None:
        return Summary(
            blocking="tcp_ip",
            accessible=False,
            mechanism=tcp_label(connect_failure),
            tcp_failure=connect_failure,
        )
    if failure == failures.UNEXPECTED_RESPONSE:
        mechanism = Mechanism.VPN_BAD_RESPONSE
    elif failure in (failures.GENERIC_TIMEOUT, failures.TIMED_OUT):
        mechanism = Mechanism.VPN_TIMEOUT
    elif failure in (failures.CONNECTION_REFUSED, failures.HOST_UNREACHABLE, failures.NETWORK_UNREACHABLE):
        mechanism = Mechanism.VPN_REFUSED
    else:
        mechanism = Mechanism.VPN_RESET
    udp = transport == "udp"
    return Summary(
        blocking="tcp_ip" if udp and mechanism is not Mechanism.VPN_BAD_RESPONSE else "http-failure",
        accessible=False,
        mechanism=mechanism,
        tcp_failure=failure if udp else None,
        http_failure=None if udp else failure,
    )
