"""The TLS handshake step over an established TCP connection, with the real SNI.

Certificates are verified against the system store or an explicit CA file; the host name
checked is the SNI, never the IP address the connection went to.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from probe.errors import ConfigError
from probe.model import PeerCertificate, TLSHandshake
from probe.steps import failures
from probe.steps.clock import Clock
from probe.steps.tcp import Connection

_RDNs = tuple[tuple[tuple[str, str], ...], ...]
_Pairs = tuple[tuple[str, str], ...]

DEFAULT_ALPN: tuple[str, ...] = ("h2", "http/1.1")
"""What a browser offers; the ClientHello should look like the traffic a censor targets."""


def make_ssl_context(ca_file: Path | None = None, *, alpn: tuple[str, ...] = DEFAULT_ALPN) -> ssl.SSLContext:
    """A verifying client context trusting the system store, or only *ca_file* when given.

    Raises:
        ConfigError: *ca_file* cannot be read or holds no PEM certificate.
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if not isinstance(exc, ssl.SSLError) and exc.strerror else "not a PEM CA file"
        raise ConfigError(f"--ca-file {ca_file}: {reason}") from None
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


@dataclass(frozen=True, slots=True)
class Trust:
    """What a :class:`ClientContexts` trusts: the bytes of a CA file as read, or (``None``)
    the system store."""

    ca_bytes: bytes | None


@dataclass(frozen=True, slots=True)
class ClientContexts:
    """The client contexts of one trust configuration, built once and shared by measurements.

    Loading the system trust store costs ~50 ms of CPU; doing it per measurement would
    serialise a whole round on the event loop. Contexts are safe to share between
    concurrent connections. There are two because httpx sets the ALPN list of any context it
    is given (to ``http/1.1``): the handshake step's context, which must keep offering what
    a browser offers, is never handed to httpx.

    They pickle as their :attr:`trust` and are built again from it where they are unpickled:
    an SSL context cannot cross to another process, what it trusts can (the daemon hands each
    round's plan to the round's own process, :mod:`probe.rounds.process`, with the CA file as
    the daemon read it).
    """

    handshake: ssl.SSLContext
    """For :func:`handshake`: ALPN ``h2, http/1.1``, like a browser's ClientHello."""
    httpx: ssl.SSLContext
    """For everything httpx does: page fetches, DNS over HTTPS, the control client."""
    trust: Trust | None = field(default=None, repr=False)
    """What they trust; ``None`` for contexts made by hand, which cannot be pickled."""

    def __reduce__(self) -> tuple[object, tuple[Trust]]:
        if self.trust is None:
            raise TypeError("ClientContexts made by hand cannot be pickled: use load_client_contexts")
        return (_trusting, (self.trust,))


def load_client_contexts(ca_file: Path | None = None) -> ClientContexts:
    """New contexts trusting the system store, or only *ca_file* when given, read now.

    What a round's plan holds (:func:`probe.webconnectivity.prepare`): built once per round
    and passed to its measurements, so a CA file rotated between rounds counts from the next.
    The file is read once: both contexts trust the same bytes.

    Raises:
        ConfigError: *ca_file* cannot be read or holds no PEM certificate.
    """
    if ca_file is None:
        return _trusting(Trust(None))
    try:
        data = ca_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--ca-file {ca_file}: {exc.strerror or exc}") from None
    return _trusting(Trust(data), ca_file)


def _trusting(trust: Trust, ca_file: Path | None = None) -> ClientContexts:
    """Contexts trusting *trust*; the bytes go through a file of their own, so that OpenSSL
    reads them exactly as it reads a CA file (``TRUSTED CERTIFICATE`` blocks, comments).
    Without a writable temporary directory they are read as PEM text instead (plain
    ``CERTIFICATE`` blocks only)."""
    if trust.ca_bytes is None:
        return ClientContexts(make_ssl_context(), make_ssl_context(alpn=("http/1.1",)), trust)
    try:
        with tempfile.TemporaryDirectory(prefix="reachprobe-ca-") as directory:
            copy = Path(directory) / "ca.pem"
            copy.write_bytes(trust.ca_bytes)
            contexts = [make_ssl_context(copy, alpn=alpn) for alpn in (DEFAULT_ALPN, ("http/1.1",))]
    except ConfigError:  # named after the file the user gave, not the copy
        raise ConfigError(f"--ca-file {ca_file or '(as read before)'}: not a PEM CA file") from None
    except OSError:
        contexts = [_from_pem_text(trust.ca_bytes, ca_file, alpn) for alpn in (DEFAULT_ALPN, ("http/1.1",))]
    return ClientContexts(contexts[0], contexts[1], trust)


def _from_pem_text(data: bytes, ca_file: Path | None, alpn: tuple[str, ...]) -> ssl.SSLContext:
    # PEM is ASCII; bundles have UTF-8 in their comments, which OpenSSL skips, but cadata
    # must be ASCII. An empty cadata would load the system store: refused first.
    text = data.decode("ascii", errors="ignore")
    try:
        if not text.strip():
            raise ssl.SSLError("no certificate")
        context = ssl.create_default_context(cadata=text)
    except ssl.SSLError:
        raise ConfigError(f"--ca-file {ca_file or '(as read before)'}: not a PEM CA file") from None
    context.set_alpn_protocols(list(alpn))
    return context


def client_contexts(ca_file: Path | None = None) -> ClientContexts:
    """Contexts trusting the system store, or only *ca_file*, shared while the file is unchanged.

    For callers with no plan to keep contexts in (the control helper answers each request
    with the contexts of its ``ca_file``): the contexts are remembered per file *version*
    (its inode, size and modification time), so a rotated file is read again at the next
    call, never trusted stale for the process's life.

    Raises:
        ConfigError: *ca_file* cannot be read or holds no PEM certificate (not remembered).
    """
    version: tuple[int, ...] = ()
    if ca_file is not None:
        try:
            st = ca_file.stat()
        except OSError:
            return load_client_contexts(ca_file)  # raises the one-line ConfigError
        version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return _remembered(ca_file, version)


@functools.lru_cache(maxsize=16)
def _remembered(ca_file: Path | None, version: tuple[int, ...]) -> ClientContexts:
    return load_client_contexts(ca_file)


async def handshake(
    connection: Connection,
    *,
    address: str,
    server_name: str,
    ssl_context: ssl.SSLContext,
    timeout: float,
    clock: Clock,
    transaction_id: int = 0,
    tags: tuple[str, ...] = (),
) -> TLSHandshake:
    """Run a TLS handshake on *connection*, sending *server_name* as SNI.

    Returns:
        The recorded handshake; ``failure`` is set and the certificate list empty on failure.
    """
    t0 = clock()
    try:
        async with asyncio.timeout(timeout):
            await connection.writer.start_tls(ssl_context, server_hostname=server_name)
    except failures.NETWORK_EXCEPTIONS as exc:
        return TLSHandshake(
            address=address,
            server_name=server_name,
            cipher_suite="",
            negotiated_protocol="",
            tls_version="",
            peer_certificates=(),
            failure=failures.classify_tls_handshake(exc),
            t0=t0,
            t=clock(),
            transaction_id=transaction_id,
            tags=tags,
        )
    tls: ssl.SSLObject = connection.writer.get_extra_info("ssl_object")
    cipher = tls.cipher()
    return TLSHandshake(
        address=address,
        server_name=server_name,
        cipher_suite=cipher[0] if cipher else "",
        negotiated_protocol=tls.selected_alpn_protocol() or "",
        tls_version=tls.version() or "",
        peer_certificates=_peer_certificates(tls),
        failure=None,
        t0=t0,
        t=clock(),
        transaction_id=transaction_id,
        tags=tags,
    )


def _peer_certificates(tls: ssl.SSLObject) -> tuple[PeerCertificate, ...]:
    der = tls.getpeercert(binary_form=True)
    if not der:
        return ()
    info = tls.getpeercert() or {}
    return (
        PeerCertificate(
            data=der,
            subject=_name(cast(_RDNs, info.get("subject", ()))),
            issuer=_name(cast(_RDNs, info.get("issuer", ()))),
            not_before=str(info.get("notBefore", "")),
            not_after=str(info.get("notAfter", "")),
            subject_alt_names=tuple(
                f"{kind}:{value}" for kind, value in cast(_Pairs, info.get("subjectAltName", ()))
            ),
            sha256=hashlib.sha256(der).hexdigest(),
        ),
    )


def _name(rdns: _RDNs) -> str:
    """``CN=example.com, O=Example`` from the nested tuples :meth:`getpeercert` returns."""
    return ", ".join(f"{_SHORT.get(key, key)}={value}" for rdn in rdns for key, value in rdn)


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}
