"""The SNI blocking test (OONI ts-024, ``sni_blocking``): the name, or the address?

Two TLS handshakes to one test-helper address: one whose ClientHello carries the *target*
name, one carrying a *control* (decoy) name. The test helper is ``--testhelper`` (``ip:port``,
``[v6]:port`` or ``name:port``), by default ``<control_sni>:443`` as the spec says. Point it at
a neutral server (the spec's use: does the name alone draw the censor's reset, wherever it
goes?) or at the target's own address (does that server's address pass with another name?
— how :func:`follow_up` settles a web measurement's failed handshake).

Certificates are verified (system store or ``--ca-file``) against the SNI sent, so a server
that does not serve the name answers ``ssl_invalid_hostname``: the spec counts that as
success (the ClientHello reached it). Both handshakes start together, each after a random
delay under 250 ms (the spec's allowance, so neither reliably goes first).

``test_keys``: the spec's ``control`` and ``target`` subresults (``failure``,
``network_events``, ``queries`` — ``null`` when the helper is an address — ``requests``
(``null``), ``sni``, ``tcp_connect``, ``th_address``, ``tls_handshakes``), probe-cli's
``result`` (``success.got_server_hello``, ``interference.reset``, …) and our summary
(``x_blocking``, ``x_accessible``, ``x_mechanism``: :mod:`probe.analysis.sni`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import ssl
from dataclasses import dataclass, replace
from typing import Any, Final

from probe import serialize
from probe.analysis import sni
from probe.errors import TargetError
from probe.mechanism import Mechanism
from probe.model import DNSQuery, OONIMeasurement, Summary, WebConnectivityTestKeys
from probe.nettests import tlsendpoint
from probe.nettests.base import Clock, Context, finish
from probe.nettests.urlgetter import summary_keys
from probe.steps import dns, urls
from probe.steps.clock import Clock as StepClock

TEST_NAME: Final = "sni_blocking"
TEST_VERSION: Final = "0.3.0"
"""probe-cli's version of the experiment whose keys we write (spec 2020-01-28-001)."""
DEFAULT_CONTROL_SNI: Final = "example.org"
"""probe-cli's default control name."""
MAX_DELAY_S: Final = 0.25


def target_name(text: str) -> str:
    """The SNI to test: a URL's host, or the name (or address) itself, IDNA-encoded.

    Raises:
        TargetError: neither a URL with a host nor a valid host name.
    """
    if "://" in text:
        _, host, _ = urls.split_url(text)
        return host.rstrip(".")
    return urls.encode_hostname(text.strip())


def split_testhelper(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``ip:port``, ``[v6]:port`` or ``name:port``.

    Raises:
        TargetError: no port, a bad port, or a bad host name.
    """
    try:
        return urls.parse_endpoint(text)
    except urls.EndpointError:
        pass
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535 or not host:
        raise TargetError(f"test helper {text!r}: expected ip:port, [v6]:port or name:port")
    return urls.encode_hostname(host), int(port)


@dataclass(frozen=True, slots=True)
class DecoyCheck:
    """Two handshakes to one address: the real name's and a decoy's (what :mod:`probe.analysis.sni` reads)."""

    target: tlsendpoint.Attempt
    control: tlsendpoint.Attempt

    @property
    def verdict(self) -> sni.Verdict:
        """What the pair says (:func:`probe.analysis.sni.decide`)."""
        return sni.decide(_side(self.target), _side(self.control))


async def decoy_check(
    ip: str,
    port: int,
    *,
    target_sni: str,
    control_sni: str,
    ssl_context: ssl.SSLContext,
    timeout: float,
    clock: StepClock,
    transaction_id: int = 0,
) -> DecoyCheck:
    """Handshake with *target_sni* and with *control_sni* to *ip*:*port*, concurrently."""

    async def one(name: str, offset: int) -> tlsendpoint.Attempt:
        await asyncio.sleep(secrets.randbelow(int(MAX_DELAY_S * 1000)) / 1000)
        return await tlsendpoint.attempt(
            ip, port, server_name=name, ssl_context=ssl_context, timeout=timeout, clock=clock,
            transaction_id=transaction_id + offset,
        )  # fmt: skip

    target, control = await asyncio.gather(one(target_sni, 1), one(control_sni, 2))
    return DecoyCheck(target, control)


DECOY_TAG: Final = "x_decoy_sni"
"""The tag of the connect and handshake a web measurement's decoy follow-up added."""


async def follow_up(
    keys: WebConnectivityTestKeys,
    *,
    decoy_sni: str,
    ssl_context: ssl.SSLContext,
    timeout: float,
    clock: StepClock,
) -> WebConnectivityTestKeys:
    """Settle a web measurement's failed TLS handshake with a decoy-SNI handshake to its address.

    When the analysis gave a handshake mechanism (:data:`probe.analysis.sni.FOLLOWED_UP`), one
    TCP connect and TLS handshake with *decoy_sni* go to the address of the first failed
    handshake; they join the keys' ``tcp_connect`` and ``tls_handshakes``, tagged
    :data:`DECOY_TAG`, and :func:`probe.analysis.sni.refine` gives the mechanism: the name's
    (``tls.reset.sni``, ``tls.timeout.sni``, ``tls.eof.sni``) when the decoy got through, the
    address's (``tls.reset``, ``tls.timeout``, ``tls.eof``) when it did not. OONI's keys
    (``blocking``, ``accessible``) are left as the reference decided them. Other keys: returned
    as they are, with no traffic.
    """
    mechanism = keys.mechanism
    failed = next((h for h in keys.tls_handshakes if h.failure is not None), None)
    if not isinstance(mechanism, Mechanism) or mechanism not in sni.FOLLOWED_UP or failed is None:
        return keys
    ip, port = urls.parse_endpoint(failed.address)
    ids = [c.transaction_id for c in keys.tcp_connect] + [h.transaction_id for h in keys.tls_handshakes]
    transaction_id = 1 + max(ids, default=0)
    decoy = await tlsendpoint.attempt(
        ip, port, server_name=target_name(decoy_sni), ssl_context=ssl_context, timeout=timeout, clock=clock,
        transaction_id=transaction_id,
    )  # fmt: skip
    handshakes = () if decoy.handshake is None else (replace(decoy.handshake, tags=(DECOY_TAG,)),)
    return replace(
        keys,
        tcp_connect=(*keys.tcp_connect, replace(decoy.connect, tags=(DECOY_TAG,))),
        tls_handshakes=(*keys.tls_handshakes, *handshakes),
        mechanism=sni.refine(mechanism, target_failure=failed.failure, decoy=_side(decoy)),
    )


def _side(attempt: tlsendpoint.Attempt) -> sni.Handshake:
    return sni.Handshake(attempt.failure, attempt.failed_operation)


async def measure(
    target: str,
    *,
    context: Context,
    control_sni: str = DEFAULT_CONTROL_SNI,
    testhelper: str | None = None,
    ssl_context: ssl.SSLContext,
    timeout: float = 10.0,
) -> OONIMeasurement:
    """Measure *target* (a name or URL) against *control_sni* at the test helper.

    Raises:
        TargetError: *target*, *control_sni* or *testhelper* is malformed.
    """
    target_sni, control = target_name(target), target_name(control_sni)
    th_address = testhelper or f"{control}:443"
    host, port = split_testhelper(th_address)
    clock = Clock()
    query: DNSQuery | None = None
    ip = host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        query = await dns.resolve_system(host, timeout=timeout, clock=clock.elapsed, port=port)
        addresses = [a.ipv4 for a in query.answers if a.ipv4] + [a.ipv6 for a in query.answers if a.ipv6]
        ip = addresses[0] if addresses else ""
    queries = serialize.as_dict([query]) if query is not None else None
    if query is not None and not ip:
        failure = query.failure or "dns_no_answer"
        subresults = {
            role: _subresult(None, sni_=name, th_address=th_address, queries=queries, failure=failure)
            for role, name in (("target", target_sni), ("control", control))
        }
        verdict_pair = (sni.Handshake(failure, "resolve"), sni.Handshake(failure, "resolve"))
    else:
        check = await decoy_check(
            ip, port, target_sni=target_sni, control_sni=control, ssl_context=ssl_context, timeout=timeout,
            clock=clock.elapsed,
        )  # fmt: skip
        subresults = {
            "target": _subresult(check.target, sni_=target_sni, th_address=th_address, queries=queries),
            "control": _subresult(check.control, sni_=control, th_address=th_address, queries=queries),
        }
        verdict_pair = (_side(check.target), _side(check.control))
    verdict = sni.decide(*verdict_pair)
    summary = Summary(
        blocking=verdict.blocking,
        accessible=verdict.accessible,
        mechanism=verdict.mechanism,
        tcp_failure=verdict_pair[0].failure if verdict_pair[0].operation == "connect" else None,
        tls_failure=verdict_pair[0].failure if verdict_pair[0].operation == "tls_handshake" else None,
        control_failure=verdict_pair[1].failure,
    )
    test_keys = {
        "control": subresults["control"],
        "result": sni.result(*verdict_pair),
        "target": subresults["target"],
        **summary_keys(summary),
    }
    return finish(
        test_name=TEST_NAME, test_version=TEST_VERSION, input=target_sni, test_keys=test_keys,
        summary=summary, clock=clock, context=context,
    )  # fmt: skip


def _subresult(
    attempt: tlsendpoint.Attempt | None,
    *,
    sni_: str,
    th_address: str,
    queries: Any,
    failure: str | None = None,
) -> dict[str, Any]:
    steps = tlsendpoint.records(
        [attempt.connect] if attempt else [],
        [attempt.handshake] if attempt and attempt.handshake else [],
    )
    return {
        "failure": attempt.failure if attempt else failure,
        "network_events": steps["network_events"],
        "queries": queries,
        "requests": None,
        "sni": sni_,
        "tcp_connect": steps["tcp_connect"],
        "th_address": th_address,
        "tls_handshakes": steps["tls_handshakes"],
    }
