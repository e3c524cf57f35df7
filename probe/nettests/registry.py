"""The families of tests beyond websites: name → how a round runs it, what it sends, what it costs.

A family is one entry of :data:`FAMILIES`. Its test module is imported only when the family
runs (:meth:`Family.run`), and a family whose module is not there (a build without it) is
simply not :meth:`~Family.available`. A test module may define the round's entry point itself,
``async def run_family(given: FamilyInput) -> Sequence[OONIMeasurement]``; otherwise the entry
here adapts the module's own ``measure`` (each follows its OONI spec's inputs: an endpoint
list, a target list, one URL). Adding a family is one entry here, one ``[tests]`` switch
(:mod:`probe.rounds.settings`) and, for the flags people read, its display name
(:mod:`measurements.patterns.families`).

What each family sends is said here once (:attr:`Family.sends`, :attr:`Family.bytes_estimate`):
the README's table, ``probe families`` and the data budget read it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from probe.model import OONIMeasurement
    from probe.nettests.base import Context
    from probe.webconnectivity import MeasureConfig


@dataclass(frozen=True, slots=True)
class FamilyInput:
    """What a round hands a family: who measures, how, and within which limits."""

    context: Context
    config: MeasureConfig
    """The round's measurement configuration: timeouts, CA file, resolvers, public networks,
    the control, the volunteer's addresses (to scrub)."""
    endpoints: Path | None = None
    """An endpoint-list override (:mod:`probe.nettests.endpoints`); ``None``: the shipped lists."""
    byte_budget: int = 0
    """Bytes the family may download in this round (the heavy ones honour it)."""
    throughput_urls: tuple[str, ...] = ()
    throughput_reference_url: str | None = None


Adapter = Callable[[ModuleType, FamilyInput], Awaitable[Sequence["OONIMeasurement"]]]


@dataclass(frozen=True, slots=True)
class Family:
    """One family of tests: its module, what it sends, what it costs, how a round runs it."""

    name: str
    module: str
    sends: str
    """What goes on the wire, to whom: the README's words."""
    bytes_estimate: int
    """Bytes a round typically moves for it (both directions), for the data budget."""
    adapter: Adapter | None = field(default=None, repr=False)
    heavy: bool = False
    """Stopped once the month's data budget is spent."""

    def available(self) -> bool:
        """Is its test module installed?"""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False

    async def run(self, given: FamilyInput) -> list[OONIMeasurement]:
        """Measure the family once (its module's ``run_family``, else the adapter).

        Raises:
            ConfigError: its endpoint list is missing or invalid (e.g. no VPN endpoint listed).
            LookupError: the module offers no entry point this registry knows.
        """
        module = importlib.import_module(self.module)
        entry = getattr(module, "run_family", None)
        if entry is not None:
            return list(await entry(given))
        if self.adapter is None:
            raise LookupError(f"{self.module} has no run_family and the registry no adapter")
        return list(await self.adapter(module, given))


def _endpoints(family: str, given: FamilyInput) -> Any:
    from probe.nettests import endpoints

    return endpoints.load(family, given.endpoints)


async def _messaging(module: ModuleType, given: FamilyInput) -> Sequence[OONIMeasurement]:
    from probe.nettests.urlgetter import GetterConfig

    name = module.__name__.rsplit(".", 1)[1]
    config = GetterConfig.from_measure_config(given.config)
    return [await module.measure(_endpoints(name, given), context=given.context, config=config)]


async def _tor(module: ModuleType, given: FamilyInput) -> Sequence[OONIMeasurement]:
    config = module.TorConfig(timeout=given.config.tcp_timeout)
    targets = module.targets_from(_endpoints("tor", given))
    return [await module.measure(targets, context=given.context, config=config)]


async def _vpn(module: ModuleType, given: FamilyInput) -> Sequence[OONIMeasurement]:
    targets = module.endpoints_from(_endpoints("vpn", given))
    return list(await module.measure_all(targets, context=given.context, timeout=given.config.tcp_timeout))


async def _sni_blocking(module: ModuleType, given: FamilyInput) -> Sequence[OONIMeasurement]:
    from probe.errors import ConfigError
    from probe.steps.tls import make_ssl_context
    from probe.steps.urls import authority

    listed = _endpoints("sni_blocking", given)
    targets = listed.require("target").role("target")
    helper = listed.one("testhelper")  # the neutral server the names are sent to
    if not helper.ports:
        raise ConfigError(f"{helper.where}: sni_blocking.ports: the test helper's port is needed")
    context = make_ssl_context(given.config.ca_file)
    decoy = helper.server_name or module.DEFAULT_CONTROL_SNI
    where = authority(helper.host, helper.ports[0])
    timeout = given.config.tls_timeout
    return [
        await module.measure(
            t.url or t.host, context=given.context, control_sni=decoy, testhelper=where, ssl_context=context,
            timeout=timeout,
        )
        for t in targets
    ]  # fmt: skip


async def _http3(module: ModuleType, given: FamilyInput) -> Sequence[OONIMeasurement]:
    c = given.config
    config = module.HTTP3Config(
        ca_file=c.ca_file, dns_timeout=c.dns_timeout, tcp_timeout=c.tcp_timeout, tls_timeout=c.tls_timeout,
        quic_timeout=c.tls_timeout, http_timeout=c.http_timeout, allow_loopback=c.allow_loopback,
        expect_h3=True,  # listed: the list is the evidence that the site serves HTTP/3
    )  # fmt: skip
    sites = _endpoints("http3", given).role("site")
    # At once: a dropped QUIC handshake waits out its timeout, and nothing here times a transfer.
    return list(
        await asyncio.gather(*(module.measure(s.url, context=given.context, config=config) for s in sites))
    )


async def _throughput(module: ModuleType, given: FamilyInput) -> Sequence[OONIMeasurement]:
    if not given.throughput_urls:
        return []
    downloads = len(given.throughput_urls) * (2 if given.throughput_reference_url else 1)
    c = given.config
    config = module.ThroughputConfig(
        max_bytes=max(1, given.byte_budget // downloads), reference_url=given.throughput_reference_url,
        control_url=c.control_url, ca_file=c.ca_file, step_timeout=c.tcp_timeout,
        allow_loopback=c.allow_loopback,
    )  # fmt: skip
    # One after another: concurrent downloads would share (and so halve) the line they time.
    return [await module.measure(url, context=given.context, config=config) for url in given.throughput_urls]


MIB: Final = 1024 * 1024
FAMILIES: Final[dict[str, Family]] = {
    f.name: f
    for f in (
        Family(
            "whatsapp", "probe.nettests.whatsapp",
            "a DNS lookup and a TCP connect (closed at once) to each of e1…e16.whatsapp.net on ports 443 "
            "and 5222; an HTTPS GET of v.whatsapp.net/v2/register and of web.whatsapp.com",
            bytes_estimate=300_000, adapter=_messaging,
        ),
        Family(
            "telegram", "probe.nettests.telegram",
            "an HTTP POST / without a body to each of Telegram's six data-centre addresses on ports 80 "
            "and 443 (plain HTTP on both); an HTTPS GET of web.telegram.org",
            bytes_estimate=200_000, adapter=_messaging,
        ),
        Family(
            "signal", "probe.nettests.signal",
            "an HTTPS GET / of each of Signal's five backends (textsecure-service.whispersystems.org, "
            "storage, cdn, cdn2, sfu.voip.signal.org; verified against Signal's roots); a DNS lookup "
            "of uptime.signal.org",
            bytes_estimate=100_000, adapter=_messaging,
        ),
        Family(
            "facebook_messenger", "probe.nettests.facebook_messenger",
            "a DNS lookup of each of Facebook Messenger's seven service hosts and a TCP connect (port "
            "443, closed at once) to the six TCP ones whose answer is consistent; no data",
            bytes_estimate=20_000, adapter=_messaging,
        ),
        Family(
            "tor", "probe.nettests.tor",
            "a TCP connect and a TLS handshake to each Tor directory authority's OR port, a GET of the "
            "consensus from their directory ports (read until its first bytes came); bridges an "
            "operator lists",
            bytes_estimate=2 * MIB, adapter=_tor,
        ),
        Family(
            "vpn", "probe.nettests.vpn",
            "a WireGuard handshake initiation (148 bytes, UDP) or an OpenVPN hard reset to each VPN "
            "endpoint the operator lists; nothing through a tunnel",
            bytes_estimate=10_000, adapter=_vpn,
        ),
        Family(
            "sni_blocking", "probe.nettests.sni_blocking",
            "per listed name (insaf.pk, pticandidates.com, factfocus.com, x.com): two TLS handshakes "
            "with the list's test helper (a neutral server, example.org), one naming the site, one "
            "the decoy; no HTTP",
            bytes_estimate=100_000, adapter=_sni_blocking,
        ),
        Family(
            "http3", "probe.nettests.http3",
            "per listed site (YouTube, Google, Facebook, Instagram, Cloudflare): a DNS lookup, a TCP "
            "connect + TLS handshake + HEAD / to its address, then a QUIC handshake (UDP 443) and one "
            "GET of the page over HTTP/3, read to its first 64 KiB",
            bytes_estimate=600_000, adapter=_http3,
        ),
        Family(
            "throughput", "probe.nettests.throughput",
            "GETs of the media URLs (and the reference URL) the volunteer lists, each stopped at its "
            "share of throughput_round_bytes or 15 s; the control downloads the same URL",
            bytes_estimate=2 * MIB, adapter=_throughput, heavy=True,
        ),
    )
}  # fmt: skip
"""Every family, by its ``[tests]`` name."""


def family(name: str) -> Family:
    """The family called *name*.

    Raises:
        KeyError: no such family.
    """
    return FAMILIES[name]


def with_adapter(name: str, adapter: Adapter) -> Family:
    """*name*'s entry run by *adapter* (tests, and a build that wires a module differently)."""
    return replace(FAMILIES[name], adapter=adapter)
