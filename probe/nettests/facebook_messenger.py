"""Facebook Messenger (OONI ts-019-facebook-messenger, probe-cli ``facebook_messenger`` 0.2.1).

What it sends (:func:`measure`), for the endpoint list ``facebook_messenger``
(:mod:`probe.nettests.endpoints`): for each service (role ``service``: ``b-api.facebook.com``,
``b-graph.facebook.com``, ``edge-mqtt.facebook.com``, ``external.xx.fbcdn.net``,
``scontent.xx.fbcdn.net``, ``star.c10r.facebook.com``) a DNS lookup and, when its answer is
consistent, a TCP connect to port 443, closed at once; for STUN (role ``stun``,
``stun.fbsbx.com``, a UDP service) the lookup alone.

The keys, as the spec defines them, per service ``<name>`` (the entry's ``name``):
``facebook_<name>_dns_consistent`` — the lookup answered and every address is in the
entry's AS (``params.asn``, Facebook's AS32934); ``false`` when the lookup failed or an
address is elsewhere; ``facebook_<name>_reachable`` — the connect succeeded (``null`` for STUN
and when the DNS was inconsistent); ``facebook_dns_blocking`` and ``facebook_tcp_blocking`` —
any service inconsistent, any unreachable.

One difference from OONI's probe, which always knows an address's AS: reachprobe knows it
only from the operator's ASN database (``network.asn_database``). An address of unknown AS
(0) that is public counts as consistent-unknown: the key is ``null`` when no address could be
placed (no database), the connect still runs, and nothing is called DNS blocking on that
ground alone; a bogon or loopback answer is inconsistent whatever the database says. Our
summary (``x_blocking``, ``x_accessible``, ``x_mechanism``): DNS first (``dns.localhost``,
``dns.bogon``, ``dns.blockpage`` for an answer outside the AS, or the lookup's failure), then
TCP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from probe.ipinfo import is_bogon, is_loopback, parse_networks
from probe.mechanism import Mechanism
from probe.model import Blocking, OONIMeasurement, Summary
from probe.nettests import urlgetter, urlverdict
from probe.nettests.base import Context
from probe.nettests.endpoints import Endpoint, EndpointList
from probe.nettests.urlgetter import GetterConfig, Operation, Session

TEST_NAME: Final = "facebook_messenger"
TEST_VERSION: Final = "0.2.1"
FAMILY: Final = "facebook_messenger"
ROLES: Final = ("service",)
KEY_PREFIXES: Final = ("facebook_",)
"""The spec's own test keys start with these (the rest are urlgetter's and ours)."""
FACEBOOK_ASN: Final = 32934
PORT: Final = 443


@dataclass(frozen=True, slots=True)
class Service:
    """One service's lookup (and connect), and what they say."""

    endpoint: Endpoint
    lookup: Operation
    connect: Operation | None
    """``None`` for STUN and when the DNS was inconsistent."""
    dns_consistent: bool | None
    inconsistent: Mechanism | None = None
    """Why the DNS is inconsistent: ``dns.localhost``, ``dns.bogon``, ``dns.blockpage`` or the
    lookup's failure; ``None`` when it is not."""

    @property
    def name(self) -> str:
        return self.endpoint.name or self.endpoint.host.replace(".", "_").replace("-", "_")

    @property
    def reachable(self) -> bool | None:
        return None if self.connect is None else self.connect.ok


async def measure(
    endpoints: EndpointList, *, context: Context, config: GetterConfig | None = None
) -> OONIMeasurement:
    """Measure the Facebook Messenger services of *endpoints* (the ``facebook_messenger``
    list); *context* and *config* (whose ``asn_of`` places the answers) as
    :func:`~probe.nettests.urlgetter.begin` takes them.

    Raises:
        ConfigError: no service is listed.
    """
    session = urlgetter.begin(endpoints, ROLES, config, tls_needed=False)
    listed = [*endpoints.role("stun"), *endpoints.role("service")]
    services = await urlgetter.gather(session, [_service(e, session) for e in listed])
    return urlverdict.conclude(
        session,
        test_name=TEST_NAME,
        test_version=TEST_VERSION,
        operations=[op for s in services for op in (s.lookup, s.connect) if op is not None],
        keys=analyse(services),
        found=summarize(services, session.config),
        context=context,
    )


async def _service(endpoint: Endpoint, session: Session) -> Service:
    lookup = await urlgetter.lookup(endpoint.host, session)
    expected = endpoint.params.get("asn", FACEBOOK_ASN)
    consistent, why = consistency(lookup, asn=int(expected), config=session.config)
    connect = None
    if endpoint.role != "stun" and consistent is not False:
        # The addresses the lookup found, tried in turn: no second lookup.
        connect = await _connect(lookup, endpoint, session)
    return Service(endpoint, lookup, connect, consistent, why)


async def _connect(lookup: Operation, endpoint: Endpoint, session: Session) -> Operation:
    port = endpoint.ports[0] if endpoint.ports else PORT
    attempts = [await urlgetter.connect(address, port, session) for address in lookup.addresses[:1]]
    for address in lookup.addresses[1:]:
        if attempts[-1].ok:
            break
        attempts.append(await urlgetter.connect(address, port, session))
    last = attempts[-1]
    return Operation(
        f"tcpconnect://{endpoint.host}:{port}",
        connects=tuple(c for a in attempts for c in a.connects),
        failure=None if last.ok else attempts[0].failure,
        failed_operation=None if last.ok else urlgetter.CONNECT,
        addresses=lookup.addresses,
    )


def consistency(lookup: Operation, *, asn: int, config: GetterConfig) -> tuple[bool | None, Mechanism | None]:
    """Whether *lookup*'s answer is Facebook's: ``(consistent, why not)`` (see the module docstring)."""
    if not lookup.ok:
        return False, urlverdict.verdict(lookup, config)[1]
    addresses = lookup.addresses
    lying = urlverdict.lying_answer(addresses, config)
    if lying is not None:
        return False, lying
    public = parse_networks(config.public_networks)
    if any(is_bogon(a, public=public) and not (config.allow_loopback and is_loopback(a)) for a in addresses):
        return False, Mechanism.DNS_BOGON
    placed = [config.asn_of(a) for a in addresses]
    if any(found not in (0, asn) for found in placed):
        return False, Mechanism.DNS_BLOCKPAGE
    return (True if all(placed) else None), None


def analyse(services: Sequence[Service]) -> dict[str, Any]:
    """The spec's keys (0.4.0 names, ``facebook_<name>_…``)."""
    keys: dict[str, Any] = {}
    for service in services:
        keys[f"facebook_{service.name}_dns_consistent"] = service.dns_consistent
        keys[f"facebook_{service.name}_reachable"] = service.reachable
    keys["facebook_dns_blocking"] = any(s.dns_consistent is False for s in services)
    keys["facebook_tcp_blocking"] = any(s.reachable is False for s in services)
    return dict(sorted(keys.items()))


def summarize(services: Sequence[Service], config: GetterConfig | None = None) -> Summary:
    """Our summary: the first inconsistent DNS answer, else the first unreachable service."""
    operations = [op for s in services for op in (s.lookup, s.connect) if op is not None]
    blocking: Blocking = False
    mechanism = Mechanism.OK
    dns = next((s for s in services if s.inconsistent is not None), None)
    unreachable = next((s.connect for s in services if s.connect is not None and not s.connect.ok), None)
    if dns is not None and dns.inconsistent is not None:
        blocking, mechanism = "dns", dns.inconsistent
    elif unreachable is not None:
        blocking, mechanism = urlverdict.verdict(unreachable, config)
    return urlverdict.summary(blocking, mechanism, operations)
