"""``blocking`` / ``accessible`` / ``http_experiment_failure``: the decision table (reference §1.5).

OONI's ``analysisClassicComputeBlockingAccessible``: walk the classic observations in
:func:`~probe.analysis.observations.linear` order; the first row that applies decides.

"No control" means the helper's response is missing altogether. "No per-op control" means the
response has no entry for this step: no ``tcp_connect[ip:port]``, no ``tls_handshake[ip:port]``
with the same SNI, or (for DNS) a lookup of a name other than the URL's host — typically after a
redirect. Helpers, where ``dns_consistency == "inconsistent"`` turns every outcome into
``("dns", False)``: ``BLOCK(s)`` = ``(s, False)``, ``DOWN()`` = ``(False, False)``,
``NIL()`` = ``(None, None)``.

====  ===========================  ==============================================  ==================  ====
rule  observation                  condition                                       result              hef
====  ===========================  ==============================================  ==================  ====
1.1   final HTTP response          fetched over TLS                                ``(False, True)``
1.2   final HTTP response          no control                                      NIL()
1.3   final HTTP response          HTTP-diff algorithm: no diff                    ``(False, True)``
1.4   final HTTP response          otherwise                                       BLOCK("http-diff")
2.1   failed HTTP round trip       no control                                      NIL()               yes
2.2   failed HTTP round trip       control's fetch failed too                      DOWN()              yes
2.3   failed HTTP round trip       only the probe failed                           BLOCK("http-failure")  yes
3.1a  failed TLS handshake         no per-op control, no control                   NIL()               yes
3.1b  failed TLS handshake         no per-op control, control present              BLOCK("http-failure")  yes
3.2   failed TLS handshake         control's handshake failed too                  DOWN()              yes
3.3   failed TLS handshake         only the probe failed                           BLOCK("http-failure")  yes
4.1a  failed TCP connect           no per-op control, no control                   NIL()               yes
4.1b  failed TCP connect           no per-op control, control present              BLOCK("http-failure")  yes
4.2   failed TCP connect           control's connect failed too                    DOWN()              yes
4.3   failed TCP connect           only the probe failed                           BLOCK("tcp_ip")     yes
5.1a  failed DNS lookup            no per-op control, no control                   ``(False, True)``   yes
5.1b  failed DNS lookup            no per-op control, control present              BLOCK("dns")        yes
5.2   failed DNS lookup            control's lookup failed too                     DOWN()              yes
5.3   failed DNS lookup            ``dns_no_answer``, control resolved nothing     DOWN()              no
5.4   failed DNS lookup            only the probe failed                           BLOCK("dns")        yes
6     DNS success                  probe only loopback, control not only loopback  BLOCK("dns")
7     DNS success                  both only loopback                              DOWN()
none  nothing matched                                                              ``(None, None)``
====  ===========================  ==============================================  ==================  ====

"hef": ``http_experiment_failure`` becomes the observation's failure (for DNS too, e.g.
``dns_nxdomain_error``); in every other case it is ``None``. 5.1a is OONI's ``(False, True)``
as written (``setBlockingFalse``), not a typo here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from probe.analysis.dns_consistency import INCONSISTENT, same_host
from probe.analysis.observations import Kind, Observation
from probe.model import Blocking, ControlResponse
from probe.steps.failures import DNS_NO_ANSWER


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict keys and the row of the table that produced them."""

    blocking: Blocking
    accessible: bool | None
    http_experiment_failure: str | None
    rule: str
    """``"1.1"`` … ``"7"``, or ``"none"`` when nothing matched."""
    entry: Observation | None = None
    """The observation that decided (``None`` for ``"none"``)."""


def decide(
    linear: Iterable[Observation],
    control: ControlResponse | None,
    *,
    host: str,
    dns_consistency: str | None,
    http_diff: bool,
) -> Decision:
    """Walk *linear* and apply the first matching row of the table above.

    Args:
        linear: the classic observations in decision order.
        control: the helper's response; ``None`` when there is none.
        host: the URL's host (IDNA), to tell which lookups the control's DNS is about.
        dns_consistency: as computed for these observations.
        http_diff: what the HTTP-diff algorithm says about the final response.
    """
    inconsistent = dns_consistency == INCONSISTENT

    for entry in linear:
        rule = _rule(entry, control, host, http_diff)
        if rule is None:
            continue
        blocking, accessible = _OUTCOMES[rule]
        if inconsistent and rule not in _SET_BLOCKING_FALSE:  # BLOCK(), DOWN() and NIL() only
            blocking, accessible = "dns", False
        return Decision(blocking, accessible, entry.failure if rule in _SETS_FAILURE else None, rule, entry)
    return Decision(None, None, None, "none")


def _rule(entry: Observation, control: ControlResponse | None, host: str, http_diff: bool) -> str | None:
    if entry.is_final_response:
        if entry.over_tls:
            return "1.1"
        if control is None:
            return "1.2"
        return "1.4" if http_diff else "1.3"
    if entry.failure is not None:
        return _failure_rule(entry, control, host)
    if entry.kind is Kind.DNS and entry.query is not None:
        return _loopback_rule(entry.query.addresses, control, host, entry.query.hostname)
    return None


def _failure_rule(entry: Observation, control: ControlResponse | None, host: str) -> str | None:
    if entry.kind is Kind.HTTP:
        if control is None:
            return "2.1"
        return "2.2" if control.http_request.failure is not None else "2.3"
    if entry.kind is Kind.TLS and entry.tls is not None:
        tls = control.tls_handshake.get(entry.address) if control is not None else None
        if tls is None or tls.server_name != entry.tls.server_name:
            return "3.1a" if control is None else "3.1b"
        return "3.2" if tls.failure is not None else "3.3"
    if entry.kind is Kind.TCP:
        tcp = control.tcp_connect.get(entry.address) if control is not None else None
        if tcp is None:
            return "4.1a" if control is None else "4.1b"
        return "4.2" if tcp.failure is not None else "4.3"
    if entry.kind is Kind.DNS and entry.query is not None:
        if control is None:
            return "5.1a"
        if not same_host(entry.query.hostname, host):
            return "5.1b"
        if control.dns.failure is not None:
            return "5.2"
        if entry.failure == DNS_NO_ANSWER and not control.dns.addrs:
            return "5.3"
        return "5.4"
    return None


def _loopback_rule(
    addresses: tuple[str, ...], control: ControlResponse | None, host: str, hostname: str
) -> str | None:
    if control is None or control.dns.failure is not None or not same_host(hostname, host):
        return None
    if not only_loopback(addresses):
        return None
    return "7" if only_loopback(control.dns.addrs) else "6"


def only_loopback(addresses: Iterable[str]) -> bool:
    """At least one IP address, and every IP address loopback (non-addresses are skipped)."""
    count = 0
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if not ip.is_loopback:
            return False
        count += 1
    return count > 0


_BLOCK_DNS, _DOWN, _NIL, _OK = ("dns", False), (False, False), (None, None), (False, True)
_OUTCOMES: dict[str, tuple[Blocking, bool | None]] = {
    "1.1": _OK,
    "1.2": _NIL,
    "1.3": _OK,
    "1.4": ("http-diff", False),
    "2.1": _NIL,
    "2.2": _DOWN,
    "2.3": ("http-failure", False),
    "3.1a": _NIL,
    "3.1b": ("http-failure", False),
    "3.2": _DOWN,
    "3.3": ("http-failure", False),
    "4.1a": _NIL,
    "4.1b": ("http-failure", False),
    "4.2": _DOWN,
    "4.3": ("tcp_ip", False),
    "5.1a": _OK,
    "5.1b": _BLOCK_DNS,
    "5.2": _DOWN,
    "5.3": _DOWN,
    "5.4": _BLOCK_DNS,
    "6": _BLOCK_DNS,
    "7": _DOWN,
}
_SET_BLOCKING_FALSE = frozenset({"1.1", "1.3", "5.1a"})
"""OONI's ``setBlockingFalse`` rows, which DNS inconsistency does not override."""
_SETS_FAILURE = frozenset(rule for rule in _OUTCOMES if rule[0] in "2345" and rule != "5.3")
