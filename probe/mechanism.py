"""The closed mechanism vocabulary: *how* a measurement was blocked (or why it was not).

:mod:`probe.analysis.mechanism` decides which member a measurement gets (its module docstring
has the rules); the model carries it (``WebConnectivityTestKeys.mechanism``, serialised as
OONI's extension key ``x_mechanism``); :mod:`probe.outcome` reads it for people;
:mod:`measurements.patterns.detect` scores it at its :attr:`Mechanism.layer`; the lab's scenario files
may only expect a member. A label is ``<layer or kind>.<what>``:

============================  ===================================================================
 members                      meaning
============================  ===================================================================
 ``dns.*``                    the lookup: ``nxdomain``, ``timeout``, ``refused``, ``servfail``,
                              ``localhost`` and ``bogon`` answers, ``blockpage`` (a lying answer)
 ``tcp.*``                    the connect: ``refused``, ``reset``, ``timeout``
 ``tls.*``                    the handshake: ``reset.sni`` (the ClientHello drew the reset),
                              ``mitm``, ``timeout``, ``eof``; without a control ``reset`` and
                              ``certificate`` (no censor attributed)
 ``http.*``                   the fetch: ``blockpage``, ``redirect`` (to a block URL), ``diff``,
                              ``reset``, ``timeout``, ``throttle`` (shaped, not blocked)
 ``quic.*``                   the QUIC handshake of HTTP/3 (:mod:`probe.nettests.http3`) failed
                              while TLS over TCP to the same address passed: ``timeout`` (QUIC
                              dropped), ``refused``, ``reset`` (aborted: a close, an alert, a
                              certificate TCP's did not have); no layer of its own: patterns
                              score it where the test's ``blocking`` (``tcp_ip``) says
 ``tls.*.sni`` (SNI test)     ``timeout.sni``, ``eof.sni``: the handshake with the real name was
                              dropped or closed while one with a decoy name to the same address
                              completed (:mod:`probe.analysis.sni`); ``reset.sni`` likewise
 ``vpn.*``                    a VPN handshake (:mod:`probe.nettests.vpn`: WireGuard, OpenVPN)
                              drew no valid answer: ``timeout`` (dropped: UDP, or over a TCP
                              connection that got through), ``reset`` (its first packet drew a
                              reset: DPI), ``refused`` (ICMP unreachable), ``bad_response``
                              (an answer that fails the protocol's checks); no layer of its own
 ``server.block``             the site refused (a CDN challenge, a geo page): not the network
 ``ok``, ``down``             the page came and matched; the site is down for the control too
 ``control.none``,            nothing decided: no control configured, or it failed
 ``control.unreachable``
============================  ===================================================================

Stored labels are text (SQL columns, the OONI JSON of older measurements). :func:`lookup`
reads one back: an unknown label (written by another version or another tool) is ``None``,
never an error, so old data still loads; readers then decide explicitly what an unknown label
means (:func:`layer_of_label`: the layer its prefix names, as earlier versions scored it).

Pure (stdlib only, no network imports): the data side (``measurements``) and the lab use it.
"""

from __future__ import annotations

import enum
from typing import Final


class Layer(enum.StrEnum):
    """The layers of a connection, in the order it goes through them."""

    DNS = "dns"
    TCP = "tcp"
    TLS = "tls"
    HTTP = "http"


class Mechanism(enum.StrEnum):
    """Every mechanism label the analysis can give; the value is what JSON, CSV and SQL carry."""

    DNS_NXDOMAIN = "dns.nxdomain"
    DNS_TIMEOUT = "dns.timeout"
    DNS_REFUSED = "dns.refused"
    DNS_SERVFAIL = "dns.servfail"
    DNS_LOCALHOST = "dns.localhost"
    DNS_BOGON = "dns.bogon"
    DNS_BLOCKPAGE = "dns.blockpage"
    TCP_REFUSED = "tcp.refused"
    TCP_RESET = "tcp.reset"
    TCP_TIMEOUT = "tcp.timeout"
    TLS_RESET_SNI = "tls.reset.sni"
    TLS_RESET = "tls.reset"
    TLS_MITM = "tls.mitm"
    TLS_CERTIFICATE = "tls.certificate"
    TLS_TIMEOUT = "tls.timeout"
    TLS_EOF = "tls.eof"
    HTTP_BLOCKPAGE = "http.blockpage"
    HTTP_REDIRECT = "http.redirect"
    HTTP_DIFF = "http.diff"
    HTTP_RESET = "http.reset"
    HTTP_TIMEOUT = "http.timeout"
    HTTP_THROTTLE = "http.throttle"
    QUIC_TIMEOUT = "quic.timeout"
    QUIC_REFUSED = "quic.refused"
    QUIC_RESET = "quic.reset"
    TLS_TIMEOUT_SNI = "tls.timeout.sni"
    TLS_EOF_SNI = "tls.eof.sni"
    VPN_TIMEOUT = "vpn.timeout"
    VPN_RESET = "vpn.reset"
    VPN_REFUSED = "vpn.refused"
    VPN_BAD_RESPONSE = "vpn.bad_response"
    SERVER_BLOCK = "server.block"
    OK = "ok"
    DOWN = "down"
    CONTROL_NONE = "control.none"
    CONTROL_UNREACHABLE = "control.unreachable"

    @property
    def layer(self) -> Layer | None:
        """The connection layer the label names; ``None`` for ``server.block``, ``ok``, ``down``
        and ``control.*``, which name none."""
        return _LAYER_OF.get(self)

    @property
    def is_artefact(self) -> bool:
        """Names something the censor served (a lying DNS answer, a blockpage, a redirect to a
        block URL): blocking even without a difference from the control."""
        return self in ARTEFACTS


ARTEFACTS: Final = frozenset({Mechanism.DNS_BLOCKPAGE, Mechanism.HTTP_BLOCKPAGE, Mechanism.HTTP_REDIRECT})
QUIC: Final = frozenset({Mechanism.QUIC_TIMEOUT, Mechanism.QUIC_REFUSED, Mechanism.QUIC_RESET})
"""The HTTP/3 test's own labels: the Web Connectivity analysis never gives them."""
VPN: Final = frozenset(
    {Mechanism.VPN_TIMEOUT, Mechanism.VPN_RESET, Mechanism.VPN_REFUSED, Mechanism.VPN_BAD_RESPONSE}
)
"""The VPN test's own labels: the Web Connectivity analysis never gives them."""
DECOY_SNI: Final = frozenset({Mechanism.TLS_TIMEOUT_SNI, Mechanism.TLS_EOF_SNI})
"""Given only where a handshake with a decoy SNI decided (:mod:`probe.analysis.sni`)."""
_LAYER_OF: Final[dict[Mechanism, Layer]] = {
    m: Layer(m.value.partition(".")[0]) for m in Mechanism if m.value.partition(".")[0] in set(Layer)
}


def lookup(label: str | None) -> Mechanism | None:
    """The member whose value is *label*; ``None`` for ``None`` and for an unknown label.

    Unknown labels are not errors: stored data may come from another version of reachprobe.
    """
    if label is None:
        return None
    try:
        return Mechanism(label)
    except ValueError:
        return None


def layer_of_label(label: str | None) -> Layer | None:
    """The layer of a stored *label*: its member's :attr:`~Mechanism.layer`.

    An unknown label keeps the layer its prefix names (``tls.something`` → TLS), which is how
    every earlier version scored labels; one without such a prefix names no layer (``None``).
    """
    member = lookup(label)
    if member is not None:
        return member.layer
    if label is None:
        return None
    prefix = label.partition(".")[0]
    return Layer(prefix) if prefix in set(Layer) else None
