"""The QUIC handshake step and an HTTP/3 GET over it (aioquic), pinned to one ``ip:port``.

The shape of the TCP/TLS steps (:mod:`probe.steps.tcp`, :mod:`probe.steps.tls`): one
``async def`` each, a record of what happened, failures as strings of the closed vocabulary,
never raised. The handshake is recorded as a :class:`~probe.model.TLSHandshake` with
``network`` ``udp``: OONI's ``quic_handshakes`` have exactly the fields of its
``tls_handshakes`` (probe-cli's archival ``TLSOrQUICHandshakeResult``); the GET as a
:class:`~probe.model.HTTPTransaction` whose request says ``x_transport`` ``udp``.

How QUIC failures are named (after probe-cli's netxlite, which maps quic-go's errors so):

==========================================  =============================================
 what happened                              failure
==========================================  =============================================
 no answer within the timeout (UDP dropped)  ``generic_timeout_error``
 an ICMP error on the connected socket       by errno: ``connection_refused``, …
 the peer closed with CONNECTION_REFUSED     ``connection_refused``
 the peer closed with a TLS alert            the alert's ``ssl_*`` (``unknown_ca`` →
 (CRYPTO_ERROR 0x100 + alert)                ``ssl_unknown_authority``, certificate
                                             alerts → ``ssl_invalid_certificate``,
                                             ``unrecognized_name`` → ``ssl_invalid_hostname``,
                                             others ``ssl_failed_handshake``)
 the peer closed with NO_ERROR               ``eof_error`` (as a FIN during a TLS handshake)
 the peer closed with another error          ``connection_reset`` (an abort, as a RST)
 the certificate fails verification          ``ssl_invalid_hostname``,
                                             ``ssl_unknown_authority``,
                                             ``ssl_invalid_certificate``
==========================================  =============================================

The certificate is verified after the handshake, by :func:`aioquic.tls.verify_certificate`
against the configured CA file (or certifi's store, aioquic's default), so that the peer's
certificates are recorded whatever the verdict (as OONI records them) and the failure is
classified by exception type, not by a close reason's text; the connection is then closed
with the TLS alert a verifying client sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode
from aioquic.tls import Alert, AlertDescription, verify_certificate
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL.crypto import X509StoreContextError

from probe.model import HTTPRequest, HTTPResponse, HTTPTransaction, PeerCertificate, TLSHandshake
from probe.steps import failures, urls
from probe.steps.clock import Clock
from probe.steps.http import _title as page_title

BODY_LIMIT: Final = 512 * 1024
"""Bytes of body kept (the web test's cap, OONI's too)."""
_CRYPTO_ERROR: Final = 0x100
_UNKNOWN_AUTHORITY_CODES: Final = frozenset({2, 18, 19, 20, 21})
"""OpenSSL X509_V_ERR_* codes for "I do not know who signed this" (as :mod:`probe.steps.failures`)."""
_ALERT_FAILURES: Final = {
    AlertDescription.unknown_ca: failures.SSL_UNKNOWN_AUTHORITY,
    AlertDescription.unrecognized_name: failures.SSL_INVALID_HOSTNAME,
    **dict.fromkeys(
        (
            AlertDescription.bad_certificate,
            AlertDescription.unsupported_certificate,
            AlertDescription.certificate_revoked,
            AlertDescription.certificate_expired,
            AlertDescription.certificate_unknown,
        ),
        failures.SSL_INVALID_CERTIFICATE,
    ),
}


class _Protocol(QuicConnectionProtocol):
    """aioquic's protocol, remembering how the connection ended and feeding HTTP/3 events on."""

    def __init__(self, quic: QuicConnection) -> None:
        super().__init__(quic)
        self.handshake: asyncio.Future[events.HandshakeCompleted] = asyncio.get_running_loop().create_future()
        self.terminated: events.ConnectionTerminated | None = None
        self.h3: H3Connection | None = None
        self.on_h3: dict[int, _Response] = {}

    def error_received(self, exc: Exception) -> None:
        # An ICMP error on the connected socket (port unreachable, host unreachable): the
        # handshake ends with it, as a TCP connect ends with a refusal.
        if not self.handshake.done():
            self.handshake.set_exception(exc)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.HandshakeCompleted) and not self.handshake.done():
            self.handshake.set_result(event)
        elif isinstance(event, events.ConnectionTerminated):
            self.terminated = event
            if not self.handshake.done():
                self.handshake.set_exception(ConnectionError(event.error_code))
            for response in self.on_h3.values():
                response.end(closed=event)
        if self.h3 is not None:
            for h3_event in self.h3.handle_event(event):
                waiting = self.on_h3.get(getattr(h3_event, "stream_id", -1))
                if waiting is not None:
                    waiting.feed(h3_event)


@dataclass(slots=True)
class QuicSession:
    """An established QUIC connection, handed to :func:`get`; the caller closes it."""

    protocol: _Protocol
    transport: asyncio.DatagramTransport
    address: str

    async def close(self) -> None:
        """Close at once (CONNECTION_CLOSE sent, no waiting for the peer's answer)."""
        self.protocol.close()
        self.transport.close()
        await asyncio.sleep(0)


def client_configuration(server_name: str, *, receive_window: int = 1024 * 1024) -> QuicConfiguration:
    """What the client offers: HTTP/3's ALPN and *server_name* as SNI; verification is ours.

    *receive_window* is the flow-control credit given to the server, per stream and (twice
    it) for the connection: the most it may send before the client reads, so a capped body
    costs the volunteer little more than the cap.
    """
    return QuicConfiguration(
        is_client=True, alpn_protocols=list(H3_ALPN), server_name=server_name, verify_mode=ssl.CERT_NONE,
        max_stream_data=receive_window, max_data=2 * receive_window,
    )  # fmt: skip


async def handshake(
    ip: str,
    port: int,
    *,
    server_name: str,
    ca_file: Path | None,
    timeout: float,
    clock: Clock,
    transaction_id: int = 0,
    receive_window: int = 1024 * 1024,
) -> tuple[TLSHandshake, QuicSession | None]:
    """A QUIC handshake with *ip*:*port* sending *server_name*, within *timeout* seconds
    (*receive_window*: :func:`client_configuration`'s).

    Returns:
        The record (``network`` ``udp``), and the open session when the handshake succeeded
        and the certificate verified (else ``None``, the connection closed).
    """
    loop = asyncio.get_running_loop()
    address = urls.endpoint(ip, port)
    quic = QuicConnection(configuration=client_configuration(server_name, receive_window=receive_window))
    t0 = clock()
    transport: asyncio.DatagramTransport | None = None
    protocol: _Protocol | None = None
    failure: str | None = None
    alpn = ""
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Protocol(quic), remote_addr=(ip, port)
            )
            protocol.connect(transport.get_extra_info("peername"))
            done = await protocol.handshake
            alpn = done.alpn_protocol or ""
    except ConnectionError as exc:
        if protocol is not None and protocol.terminated is not None:
            failure = close_failure(protocol.terminated.error_code)
        else:
            failure = failures.classify_connect(exc)
    except failures.NETWORK_EXCEPTIONS as exc:
        failure = failures.classify_connect(exc)
    chain = _peer_chain(quic)
    if failure is None and chain:
        failure = verify(chain, server_name=server_name, ca_file=ca_file)
        if failure is not None and protocol is not None:
            alert = AlertDescription.bad_certificate
            protocol.close(error_code=_CRYPTO_ERROR + int(alert), reason_phrase="certificate verify failed")
    record = TLSHandshake(
        address=address,
        server_name=server_name,
        cipher_suite=_cipher_suite(quic) if failure is None else "",
        negotiated_protocol=alpn if failure is None else "",
        tls_version="TLSv1.3" if failure is None else "",
        peer_certificates=tuple(_certificate(c) for c in chain),
        failure=failure,
        t0=t0,
        t=clock(),
        network="udp",
        transaction_id=transaction_id,
    )
    if failure is not None or protocol is None or transport is None:
        if protocol is not None:
            protocol.close()
        if transport is not None:
            transport.close()
            await asyncio.sleep(0)  # close() schedules the socket's close: let it run
        return record, None
    return record, QuicSession(protocol, transport, address)


def close_failure(error_code: int) -> str:
    """The failure string of a connection the peer closed with *error_code* (module table)."""
    if error_code == QuicErrorCode.CONNECTION_REFUSED:
        return failures.CONNECTION_REFUSED
    if _CRYPTO_ERROR <= error_code < _CRYPTO_ERROR + 0x100:
        try:
            alert = AlertDescription(error_code - _CRYPTO_ERROR)
        except ValueError:
            return failures.SSL_FAILED_HANDSHAKE
        return _ALERT_FAILURES.get(alert, failures.SSL_FAILED_HANDSHAKE)
    if error_code == QuicErrorCode.NO_ERROR:
        return failures.EOF_ERROR
    return failures.CONNECTION_RESET


def verify(chain: list[x509.Certificate], *, server_name: str, ca_file: Path | None) -> str | None:
    """``None`` when *chain* (leaf first) is valid for *server_name* under *ca_file*'s CAs
    (certifi's store when ``None``); else the failure, by the exception aioquic raised."""
    try:
        verify_certificate(
            chain[0], chain[1:], server_name, cafile=str(ca_file) if ca_file is not None else None
        )
    except Alert as exc:
        return _verify_failure(exc)
    return None


def _verify_failure(exc: Alert) -> str:
    if exc.description == AlertDescription.certificate_expired:
        return failures.SSL_INVALID_CERTIFICATE
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, X509StoreContextError):
        code = cause.errors[0] if cause.errors else None
        return (
            failures.SSL_UNKNOWN_AUTHORITY
            if code in _UNKNOWN_AUTHORITY_CODES
            else failures.SSL_INVALID_CERTIFICATE
        )
    if cause is not None:  # service_identity's mismatch (or an unparsable name extension)
        return (
            failures.SSL_INVALID_HOSTNAME
            if not isinstance(cause, ValueError)
            else failures.SSL_INVALID_CERTIFICATE
        )
    return failures.SSL_INVALID_CERTIFICATE


def _peer_chain(quic: QuicConnection) -> list[x509.Certificate]:
    # aioquic keeps the server's certificates on its TLS context only (no public accessor in
    # 1.7); getattr, so a version without them records none rather than failing.
    tls = getattr(quic, "tls", None)
    leaf = getattr(tls, "_peer_certificate", None)
    if leaf is None:
        return []
    return [leaf, *getattr(tls, "_peer_certificate_chain", [])]


def _cipher_suite(quic: QuicConnection) -> str:
    schedule = getattr(getattr(quic, "tls", None), "key_schedule", None)
    suite = getattr(schedule, "cipher_suite", None)
    return f"TLS_{suite.name}" if suite is not None else ""


_SHORT: Final = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
}


def _certificate(cert: x509.Certificate) -> PeerCertificate:
    der = cert.public_bytes(Encoding.DER)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [f"DNS:{n}" for n in sans.get_values_for_type(x509.DNSName)]
        names += [f"IP Address:{ip}" for ip in sans.get_values_for_type(x509.IPAddress)]
    except (x509.ExtensionNotFound, ValueError):
        names = []
    return PeerCertificate(
        data=der,
        subject=_name(cert.subject),
        issuer=_name(cert.issuer),
        not_before=cert.not_valid_before_utc.strftime("%b %e %H:%M:%S %Y GMT"),
        not_after=cert.not_valid_after_utc.strftime("%b %e %H:%M:%S %Y GMT"),
        subject_alt_names=tuple(names),
        sha256=hashlib.sha256(der).hexdigest(),
    )


def _name(name: x509.Name) -> str:
    """``CN=example.com, O=Example``, in the certificate's order (as the TLS step writes it)."""
    parts = []
    for attribute in name:
        key = getattr(attribute.oid, "_name", attribute.oid.dotted_string)
        parts.append(f"{_SHORT.get(key, key)}={attribute.value!s}")
    return ", ".join(parts)


# --- the GET ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Response:
    """One request's response as HTTP/3 events deliver it."""

    clock: Clock
    limit: int
    headers: list[tuple[str, str]] | None = None
    body: bytearray = field(default_factory=bytearray)
    received: int = 0
    truncated: bool = False
    headers_t: float | None = None
    last_byte_t: float | None = None
    failure: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def feed(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived) and self.headers is None:
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
            self.headers_t = self.clock()
        elif isinstance(event, DataReceived) and event.data:
            self.received += len(event.data)
            self.last_byte_t = self.clock()
            room = self.limit - len(self.body)
            self.body += event.data[:room]
            if len(event.data) > room:
                self.truncated = True
                self.done.set()
        if getattr(event, "stream_ended", False):
            self.done.set()

    def end(self, *, closed: events.ConnectionTerminated) -> None:
        if not self.done.is_set():
            self.failure = close_failure(closed.error_code)
            self.done.set()


async def get(
    session: QuicSession,
    *,
    url: str,
    timeout: float,
    clock: Clock,
    transaction_id: int = 0,
    user_agent: str = "Mozilla/5.0",
    body_limit: int = BODY_LIMIT,
) -> HTTPTransaction:
    """GET *url* over HTTP/3 on *session*, the body kept up to *body_limit* bytes.

    Returns:
        The transaction; ``failure`` set (``generic_timeout_error``, or the close's) when the
        response did not end within *timeout* seconds.

    Raises:
        TargetError: *url* is not an http(s) URL with a valid host.
    """
    _, host, port, parts = urls.split_url_parts(url)
    authority = urls.authority(host, port, default_port=443)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request_headers = (
        (":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", path),
        ("user-agent", user_agent), ("accept", "*/*"),
    )  # fmt: skip
    protocol = session.protocol
    if protocol.h3 is None:
        protocol.h3 = H3Connection(protocol._quic)  # the protocol's connection: aioquic's own pattern
    stream_id = protocol._quic.get_next_available_stream_id()
    response = protocol.on_h3[stream_id] = _Response(clock, body_limit)
    t0 = clock()
    failure: str | None = None
    try:
        async with asyncio.timeout(timeout):
            protocol.h3.send_headers(
                stream_id, [(k.encode(), v.encode()) for k, v in request_headers], end_stream=True
            )
            protocol.transmit()
            await response.done.wait()
    except TimeoutError:
        failure = failures.GENERIC_TIMEOUT
    failure = failure or response.failure
    request = HTTPRequest(url=url, method="GET", headers_list=request_headers, x_transport="udp")
    answer = None
    if response.headers is not None:
        status = dict(response.headers).get(":status", "0")
        headers = tuple((k, v) for k, v in response.headers if not k.startswith(":"))
        body = bytes(response.body)
        answer = HTTPResponse(
            code=int(status) if status.isdigit() else 0,
            headers_list=headers,
            body=body,
            body_is_truncated=response.truncated,
            body_length=len(body),
            title=page_title(body, None),
        )
    return HTTPTransaction(
        address=session.address,
        request=request,
        response=answer,
        failure=failure,
        t0=t0,
        t=clock(),
        alpn="h3",
        network="udp",
        transaction_id=transaction_id,
        x_headers_t=response.headers_t,
        x_body_last_byte_t=response.last_byte_t,
        x_body_bytes_received=response.received if response.headers is not None else None,
    )
