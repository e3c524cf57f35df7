"""What a handshake with the real SNI and one with a decoy SNI, to the same address, say.

The SNI blocking test (ts-024) and the web measurement's follow-up of a failed handshake both
compare two TLS handshakes to one address: the *target* (the name under test in the
ClientHello) and the *control* (a decoy name). A handshake "got through" when it completed,
or when the server answered with a certificate for another name (``ssl_invalid_hostname``):
the ClientHello reached the server either way, which is all that matters here.

- The target got through → nothing blocked the name (``ok``).
- The control got through, the target did not → the name drew the failure: SNI filtering,
  ``tls.reset.sni`` / ``tls.timeout.sni`` / ``tls.eof.sni`` (a certificate the decoy did not
  get: ``tls.mitm``). A target whose *connect* failed while the control's worked says nothing
  about the name (the ClientHello was never sent): ``tcp.*``.
- Neither got through → not the name: the address (``tcp.*`` when the connects failed, else
  ``tls.reset`` / ``tls.timeout`` / ``tls.eof``: every handshake to it fails), or the server.

:func:`result` gives probe-cli's ``result`` string for the same pair (its classes, which
OONI's analysts read). Pure: no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from probe.analysis.mechanism import CERTIFICATE_ERRORS, TIMEOUTS, tcp_label
from probe.mechanism import Mechanism
from probe.model import Blocking
from probe.steps import failures

GOT_THROUGH: Final = frozenset({None, failures.SSL_INVALID_HOSTNAME})
"""Failures of a handshake whose ClientHello reached the server (ts-024's "success")."""
SNI_MECHANISMS: Final = frozenset(
    {Mechanism.TLS_RESET_SNI, Mechanism.TLS_TIMEOUT_SNI, Mechanism.TLS_EOF_SNI, Mechanism.TLS_MITM}
)
FOLLOWED_UP: Final = frozenset(
    {Mechanism.TLS_RESET_SNI, Mechanism.TLS_RESET, Mechanism.TLS_TIMEOUT, Mechanism.TLS_EOF}
)
"""A web measurement's mechanisms that a decoy handshake to the same address can settle."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """One side of the comparison: its failure and the operation that failed."""

    failure: str | None
    operation: str | None = None
    """``connect`` or ``tls_handshake`` (``resolve`` for the test helper's name); ``None``: success."""

    @property
    def got_through(self) -> bool:
        """The ClientHello reached the server (completed, or a certificate for another name)."""
        return self.failure in GOT_THROUGH


@dataclass(frozen=True, slots=True)
class Verdict:
    """The comparison's verdict, in the summary's vocabulary."""

    blocking: Blocking
    accessible: bool
    mechanism: Mechanism

    @property
    def sni_filtering(self) -> bool:
        """Whether the name, not the address, drew the failure."""
        return self.mechanism in SNI_MECHANISMS


def decide(target: Handshake, control: Handshake) -> Verdict:
    """The verdict of *target* (real SNI) against *control* (decoy SNI) to the same address."""
    if target.got_through:
        return Verdict(blocking=False, accessible=True, mechanism=Mechanism.OK)
    if target.operation != "tls_handshake":
        return Verdict(blocking="tcp_ip", accessible=False, mechanism=tcp_label(target.failure))
    if control.got_through:
        return Verdict(blocking="http-failure", accessible=False, mechanism=sni_label(target.failure))
    return Verdict(blocking="http-failure", accessible=False, mechanism=address_label(target.failure))


def sni_label(failure: str | None) -> Mechanism:
    """A handshake with the real name failed with *failure* while the decoy's got through."""
    if failure == failures.CONNECTION_RESET:
        return Mechanism.TLS_RESET_SNI
    if failure in CERTIFICATE_ERRORS:
        return Mechanism.TLS_MITM
    if failure in TIMEOUTS:
        return Mechanism.TLS_TIMEOUT_SNI
    return Mechanism.TLS_EOF_SNI


def address_label(failure: str | None) -> Mechanism:
    """Handshakes with both names failed: the address (or the server), not the name."""
    if failure == failures.CONNECTION_RESET:
        return Mechanism.TLS_RESET
    if failure in TIMEOUTS:
        return Mechanism.TLS_TIMEOUT
    return Mechanism.TLS_EOF


def refine(mechanism: Mechanism, *, target_failure: str | None, decoy: Handshake) -> Mechanism:
    """A web measurement's *mechanism* once a decoy-SNI handshake to its failed address is known.

    Only the handshake mechanisms of :data:`FOLLOWED_UP` change: to the name's
    (:func:`sni_label`) when the decoy got through, to the address's (:func:`address_label`)
    when it did not. With a control or without one: the decoy is the control of the name.
    """
    if mechanism not in FOLLOWED_UP:
        return mechanism
    return sni_label(target_failure) if decoy.got_through else address_label(target_failure)


def result(target: Handshake, control: Handshake) -> str:
    """probe-cli's ``result`` for the pair (sniblocking ``classify``)."""
    failure = target.failure
    if failure is None or failure == failures.SSL_INVALID_HOSTNAME:
        return "success.got_server_hello"
    if failure in (failures.CONNECTION_REFUSED, failures.DNS_NXDOMAIN, "android_dns_cache_no_data"):
        return "anomaly.test_helper_unreachable"
    if failure == failures.CONNECTION_RESET:
        return "interference.reset"
    if failure == failures.EOF_ERROR:
        return "interference.closed"
    if failure == failures.GENERIC_TIMEOUT:
        return "anomaly.test_helper_unreachable" if control.failure is not None else "anomaly.timeout"
    if failure == failures.SSL_INVALID_CERTIFICATE:
        return "interference.invalid_certificate"
    if failure == failures.SSL_UNKNOWN_AUTHORITY:
        return "interference.unknown_authority"
    return "anomaly.unexpected_failure"
