"""``mechanism`` and ``confirmed``: reachprobe's finer label on top of OONI's verdict.

Every label is a member of :class:`probe.mechanism.Mechanism`, the closed vocabulary.

The first rule that applies gives the label:

1. **Artefacts.** A known fingerprint is proof whatever the diff says. A server-side
   fingerprint (:attr:`~probe.fingerprints.Fingerprint.is_server_side`: a CDN challenge, a
   geo-block page the site serves) → ``server.block``: the site refused, not the network.
   Hop by hop (``depth``), a DNS answer of a non-DoH lookup matching a DNS fingerprint →
   ``dns.blockpage``; then
   the hop's HTTP response matching a body or header fingerprint → ``http.redirect`` for a
   3xx (e.g. a ``Location`` to Wateen's restrict page) or ``http.blockpage`` for any other
   status. The first hop with an artefact wins: the censor's first move. ``confirmed`` is
   the fingerprint's name when it :attr:`~probe.fingerprints.Fingerprint.is_censorship`; an
   opt-in filter (Nayatel Safeweb), an institutional filter or a vague word names the
   mechanism but leaves ``confirmed`` null (its notes say why).
2. **Nothing measured** (no step at all) → ``None``.
3. **No control and nothing decided** (``blocking`` null without a control, or rule 5.1a, where
   OONI writes ``(false, true)`` for a failed lookup it could not check): what the probe saw,
   without attributing it to a censor, since nothing says the site works elsewhere. The
   deciding step's failure: DNS → as in rule 6 (``dns.nxdomain``, ``dns.timeout``, …); TCP →
   as in rule 7 (``tcp.timeout``, ``tcp.refused``, ``tcp.reset``); TLS → ``tls.reset`` (not
   ``tls.reset.sni``: without a control the server itself may have reset),
   ``tls.certificate`` (not ``tls.mitm``), ``tls.timeout``, ``tls.eof``; HTTP → as in rule 9,
   certificate errors as ``tls.certificate``. Only loopback answers → ``dns.localhost``.
   Nothing failed (a plain-HTTP page that loaded, rule 1.2) → ``control.none`` when no
   control was configured (``--control none``), ``control.unreachable`` when it failed.
4. ``blocking`` null with a control (no rule matched) → ``down``.
5. ``blocking`` false → ``ok`` when accessible, ``down`` when not.
6. ``blocking == "dns"``: rule 6 → ``dns.localhost``; a failed lookup decided → by its failure;
   else, among the depth-0 system-resolver answers the control did not give, a loopback
   address → ``dns.localhost``, another bogon → ``dns.bogon``; else an unexpected depth-0
   lookup failure → by its failure; else (addresses that are neither the control's nor in its
   networks, or "ghost" answers) → ``dns.blockpage``, unconfirmed.
   DNS failures: NXDOMAIN, NODATA (``dns_no_answer``) → ``dns.nxdomain``; timeouts and
   ``dns_temporary_failure`` → ``dns.timeout``; ``dns_refused_error`` → ``dns.refused``;
   anything else → ``dns.servfail``.
7. ``"tcp_ip"``, or ``"http-failure"`` decided by a connect: ``connection_refused`` and ICMP
   rejections (host/network unreachable) → ``tcp.refused``; ``connection_reset``/``aborted`` →
   ``tcp.reset``; anything else (timeouts above all) → ``tcp.timeout``.
8. ``"http-failure"`` decided by a TLS handshake (the control's handshake, or its fetch after a
   redirect, succeeded): ``connection_reset`` → ``tls.reset.sni`` (TCP got through, so the
   ClientHello, i.e. the SNI, drew the reset); a certificate the control did not get
   (``ssl_unknown_authority``, ``ssl_invalid_hostname``, ``ssl_invalid_certificate``) →
   ``tls.mitm``; timeouts → ``tls.timeout``; anything else (FIN, alert) → ``tls.eof``.
9. ``"http-failure"`` decided by an HTTP round trip: certificate errors → ``tls.mitm``;
   timeouts → ``http.throttle`` when the body was still arriving at the deadline (see
   :func:`is_throttled`), else ``http.timeout`` (nothing came, or headers or a burst and then
   silence: a stall); anything else (reset, FIN, garbage) → ``http.reset``.
10. ``"http-diff"`` → ``http.diff``.

Only ``mechanism`` depends on the transfer evidence: ``blocking``, ``accessible`` and the other
OONI keys stay exactly as the reference decides them (a throttled fetch is ``http-failure``).
"""

from __future__ import annotations

from collections.abc import Iterable

from probe.analysis.decision import Decision, only_loopback
from probe.analysis.observations import Kind, Observation, is_aaaa_no_answer
from probe.fingerprints import Fingerprint, FingerprintDB
from probe.ipinfo import IPNetwork, is_bogon, is_loopback
from probe.mechanism import Mechanism
from probe.model import ControlResponse, HTTPTransaction, WebConnectivityTestKeys
from probe.outcome import CONTROL_NOT_CONFIGURED
from probe.steps import failures
from probe.steps.http import REDIRECT_CODES

TIMEOUTS = frozenset({failures.GENERIC_TIMEOUT, failures.TIMED_OUT})
CERTIFICATE_ERRORS = frozenset(
    {failures.SSL_UNKNOWN_AUTHORITY, failures.SSL_INVALID_HOSTNAME, failures.SSL_INVALID_CERTIFICATE}
)
_DNS_NXDOMAIN = frozenset({failures.DNS_NXDOMAIN, failures.DNS_NO_ANSWER, "android_dns_cache_no_data"})
_DNS_TIMEOUT = TIMEOUTS | {failures.DNS_TEMPORARY_FAILURE}
_TCP_REFUSED = frozenset(
    {failures.CONNECTION_REFUSED, failures.HOST_UNREACHABLE, failures.NETWORK_UNREACHABLE}
)
_TCP_RESET = frozenset({failures.CONNECTION_RESET, failures.CONNECTION_ABORTED})
_UNDECIDED_WITHOUT_CONTROL = frozenset({"1.2", "2.1", "3.1a", "4.1a", "5.1a", "none"})


def label(
    keys: WebConnectivityTestKeys,
    decision: Decision,
    control: ControlResponse | None,
    fingerprints: FingerprintDB,
    observations: Iterable[Observation],
    *,
    public_networks: Iterable[IPNetwork] = (),
    control_failure: str | None = None,
) -> tuple[Mechanism | None, str | None]:
    """The mechanism of *keys* given its *decision*; *public_networks* are never bogons.

    *control_failure* tells a control switched off (``control_not_configured``) from one that
    failed, when *control* is ``None``.

    Returns:
        ``(mechanism, confirmed)``; see the module docstring for the rules.
    """
    artefact = _artefact(keys, fingerprints)
    if artefact is not None:
        mechanism, fingerprint = artefact
        if fingerprint.is_server_side:
            return Mechanism.SERVER_BLOCK, None
        return mechanism, fingerprint.name if fingerprint.is_censorship else None
    if not (keys.queries or keys.tcp_connect or keys.tls_handshakes or keys.requests):
        return None, None
    if control is None and decision.rule in _UNDECIDED_WITHOUT_CONTROL:
        return _seen(decision, observations, control_failure), None
    if decision.blocking is None:
        return Mechanism.DOWN, None
    if decision.blocking is False:
        return (Mechanism.OK if decision.accessible else Mechanism.DOWN), None
    if decision.blocking == "dns":
        return _dns(decision, control, observations, tuple(public_networks)), None
    if decision.blocking == "http-diff":
        return Mechanism.HTTP_DIFF, None
    entry = decision.entry
    failure = entry.failure if entry is not None else None
    if entry is not None and entry.kind is Kind.TLS:
        return tls_label(failure), None
    if entry is not None and entry.kind is Kind.HTTP:
        if entry.http is not None and is_throttled(entry.http):
            return Mechanism.HTTP_THROTTLE, None
        return http_label(failure), None
    return tcp_label(failure), None


def _seen(decision: Decision, observations: Iterable[Observation], control_failure: str | None) -> Mechanism:
    """Rule 3: what the probe saw, without a control to say whose doing it was."""
    entry = decision.entry
    failure = entry.failure if entry is not None else None
    if entry is None:  # nothing decided; only loopback answers leave nothing to connect to
        depth0 = (obs.query for obs in observations if obs.kind is Kind.DNS and obs.depth == 0)
        if any(q is not None and q.failure is None and only_loopback(q.addresses) for q in depth0):
            return Mechanism.DNS_LOCALHOST
    if entry is None or failure is None:
        none = control_failure == CONTROL_NOT_CONFIGURED
        return Mechanism.CONTROL_NONE if none else Mechanism.CONTROL_UNREACHABLE
    if entry.kind is Kind.DNS:
        return dns_label(failure)
    if entry.kind is Kind.TCP:
        return tcp_label(failure)
    if failure in CERTIFICATE_ERRORS:
        return Mechanism.TLS_CERTIFICATE
    if entry.kind is Kind.TLS:
        return Mechanism.TLS_RESET if failure == failures.CONNECTION_RESET else tls_label(failure)
    if entry.http is not None and is_throttled(entry.http):
        return Mechanism.HTTP_THROTTLE
    return http_label(failure)


def dns_label(failure: str | None) -> Mechanism:
    """The mechanism of a DNS lookup that failed with *failure*."""
    if failure in _DNS_NXDOMAIN:
        return Mechanism.DNS_NXDOMAIN
    if failure in _DNS_TIMEOUT:
        return Mechanism.DNS_TIMEOUT
    if failure == failures.DNS_REFUSED:
        return Mechanism.DNS_REFUSED
    return Mechanism.DNS_SERVFAIL


def tcp_label(failure: str | None) -> Mechanism:
    """The mechanism of a TCP connect that failed with *failure*."""
    if failure in _TCP_REFUSED:
        return Mechanism.TCP_REFUSED
    if failure in _TCP_RESET:
        return Mechanism.TCP_RESET
    return Mechanism.TCP_TIMEOUT


def tls_label(failure: str | None) -> Mechanism:
    """The mechanism of a TLS handshake that failed with *failure* while the control's worked."""
    if failure == failures.CONNECTION_RESET:
        return Mechanism.TLS_RESET_SNI
    if failure in CERTIFICATE_ERRORS:
        return Mechanism.TLS_MITM
    if failure in TIMEOUTS:
        return Mechanism.TLS_TIMEOUT
    return Mechanism.TLS_EOF


def http_label(failure: str | None) -> Mechanism:
    """The mechanism of an HTTP round trip that failed with *failure* while the control's worked."""
    if failure in CERTIFICATE_ERRORS:
        return Mechanism.TLS_MITM
    if failure in TIMEOUTS:
        return Mechanism.HTTP_TIMEOUT
    return Mechanism.HTTP_RESET


def is_throttled(transaction: HTTPTransaction) -> bool:
    """Whether *transaction* timed out while its body was still arriving: shaping, not a stall.

    True when it failed with a timeout after the response headers and some body bytes had
    arrived, and the last of them arrived in the second half of the time the body was awaited:
    the silence before the deadline (``t - x_body_last_byte_t``) is no longer than the time
    the body kept arriving (``x_body_last_byte_t - x_headers_t``).

    Why that bound and no fixed number of seconds: the client sees a slow body in coarse,
    irregular deliveries (over TLS one record, up to 16 KiB, at a time, which at 64 kbit/s is
    one every ~2 s; a drop in the shaper's queue adds a retransmission timeout on top, so
    gaps twice as long occur), so the gap a healthy throttled flow leaves before the deadline
    scales with the rate. A flow that kept delivering to the deadline has spent most of the
    window delivering, whatever its pace, and fails the test only when fewer than about two
    deliveries fit in the window, where the evidence is too thin to call. A stall (headers or a
    burst, then nothing) has its silence longer than its delivery. A constant floor would turn
    a burst shortly before the deadline into "throttle" out of nothing, so there is none.
    The timeout itself already says "slow": a fast body reaches the body cap and succeeds.
    """
    if transaction.failure not in TIMEOUTS:
        return False
    headers, last = transaction.x_headers_t, transaction.x_body_last_byte_t
    if headers is None or last is None or not transaction.x_body_bytes_received:
        return False
    # The clock ticks in microseconds (probe.steps.clock); rounding keeps float noise off the bound.
    return round(transaction.t - last, 6) <= round(last - headers, 6)


def _artefact(
    keys: WebConnectivityTestKeys, fingerprints: FingerprintDB
) -> tuple[Mechanism, Fingerprint] | None:
    """The first fingerprinted artefact, hop by hop: a hop's DNS answers, then its response.

    Hop order matters: a redirect to the ISP's block URL (a fingerprinted ``Location``) is the
    censor's move, and the block server's own address, looked up at the next hop, is not.
    """
    requests = tuple(reversed(keys.requests))  # time order
    depths = sorted({q.depth for q in keys.queries} | {r.depth for r in requests}, key=_hop_order)
    for depth in depths:
        for query in keys.queries:
            if query.engine == "doh" or query.depth != depth:
                continue
            names = (*query.addresses, *(a.hostname or "" for a in query.answers if a.answer_type == "CNAME"))
            found = fingerprints.match_dns(names)
            if found is not None:
                return Mechanism.DNS_BLOCKPAGE, found
        for transaction in requests:
            response = transaction.response
            if response is None or transaction.depth != depth:
                continue
            found = fingerprints.match_http(response)
            if found is not None:
                return (
                    Mechanism.HTTP_REDIRECT if response.code in REDIRECT_CODES else Mechanism.HTTP_BLOCKPAGE
                ), found
    return None


def _hop_order(depth: int | None) -> int:
    """Hops in order; a step without one (never in a measurement we make) before them all."""
    return -1 if depth is None else depth


def _dns(
    decision: Decision,
    control: ControlResponse | None,
    observations: Iterable[Observation],
    public: tuple[IPNetwork, ...],
) -> Mechanism:
    entry = decision.entry
    if decision.rule == "6":
        return Mechanism.DNS_LOCALHOST
    if entry is not None and entry.kind is Kind.DNS and entry.failure is not None:
        return dns_label(entry.failure)
    depth0 = [obs.query for obs in observations if obs.kind is Kind.DNS and obs.depth == 0 and obs.query]
    expected = set(control.dns.addrs) if control is not None else set()
    unexplained = [a for q in depth0 if q.failure is None for a in q.addresses if a not in expected]
    if any(is_loopback(a) for a in unexplained):
        return Mechanism.DNS_LOCALHOST
    if any(is_bogon(a, public=public) for a in unexplained):
        return Mechanism.DNS_BOGON
    failed = [q for q in depth0 if q.failure is not None and not is_aaaa_no_answer(q)]
    if failed and not (control is not None and control.dns.failure is not None):
        return dns_label(failed[0].failure)
    return Mechanism.DNS_BLOCKPAGE
