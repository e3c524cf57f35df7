"""The TCP connect and TLS handshake steps against real loopback servers."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import pickle
import socket
import ssl
import tempfile
import threading
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from probe.errors import ConfigError
from probe.model import TCPConnect, TLSHandshake
from probe.steps import tcp, tls, urls
from probe.steps.clock import relative_clock
from tests.servers.tcp_server import Behaviour, closed_port, connection_server, rst_close, tcp_server


def connect(port: int, timeout: float = 2.0) -> TCPConnect:
    async def run() -> TCPConnect:
        record, connection = await tcp.connect("127.0.0.1", port, timeout=timeout, clock=relative_clock())
        if connection is not None:
            await connection.close()
        return record

    return asyncio.run(run())


def handshake(
    port: int,
    server_name: str,
    ca_file: Path | None,
    timeout: float = 2.0,
    *,
    context: ssl.SSLContext | None = None,
) -> TLSHandshake:
    async def run() -> TLSHandshake:
        clock = relative_clock()
        record, connection = await tcp.connect("127.0.0.1", port, timeout=timeout, clock=clock)
        assert connection is not None, record
        try:
            return await tls.handshake(
                connection,
                address=urls.endpoint("127.0.0.1", port),
                server_name=server_name,
                ssl_context=context or tls.make_ssl_context(ca_file),
                timeout=timeout,
                clock=clock,
                transaction_id=7,
            )
        finally:
            await connection.close()

    return asyncio.run(run())


def test_connect_refused() -> None:
    record = connect(closed_port())
    assert record.status.success is False
    assert record.status.failure == "connection_refused"
    assert record.ip == "127.0.0.1"
    assert 0 <= record.t0 <= record.t


def test_connect_succeeds_when_the_server_accepts() -> None:
    with tcp_server("accept") as port:
        record = connect(port)
    assert record.status.success is True
    assert record.status.failure is None
    assert record.port == port


def test_connect_succeeds_whatever_the_server_does_next() -> None:
    """A reset after the handshake is the next step's to see, not the connect's.

    The server resets only once the connect step has returned: resetting at accept would race
    the client's event loop, which on a loaded machine may look at the socket after the RST
    arrived (then the connect itself reads ``connection_reset``, truthfully).
    """
    connected = threading.Event()

    def reset_once_connected(conn: socket.socket) -> None:
        connected.wait(10)
        rst_close(conn)

    async def run(port: int) -> tuple[TCPConnect, str | None]:
        record, connection = await tcp.connect("127.0.0.1", port, timeout=2.0, clock=relative_clock())
        connected.set()
        assert connection is not None, record
        try:
            await asyncio.sleep(0.2)  # the RST arrives
            reader_failure: str | None = None
            try:
                await asyncio.wait_for(connection.reader.read(1), 2)
            except ConnectionResetError:
                reader_failure = "connection_reset"
        finally:
            await connection.close()
        return record, reader_failure

    with connection_server(reset_once_connected, threaded=True) as port:
        record, after = asyncio.run(run(port))
    assert (record.status.success, record.status.failure, record.port) == (True, None, port)
    assert after == "connection_reset"  # the server did reset: what the next step meets


def test_endpoint_brackets_ipv6() -> None:
    assert urls.endpoint("127.0.0.1", 443) == "127.0.0.1:443"
    assert urls.endpoint("2001:db8::1", 443) == "[2001:db8::1]:443"


def test_tls_valid_certificate(ca: trustme.CA, ca_file: Path) -> None:
    with tcp_server("tls", ca.issue_cert("example.com")) as port:
        record = handshake(port, "example.com", ca_file)
    assert record.failure is None
    assert record.server_name == "example.com"
    assert record.address == f"127.0.0.1:{port}"
    assert record.tls_version in ("TLSv1.2", "TLSv1.3")
    assert record.cipher_suite
    assert record.transaction_id == 7
    (cert,) = record.peer_certificates
    assert "DNS:example.com" in cert.subject_alt_names
    assert len(cert.sha256) == 64
    assert cert.data[:1] == b"\x30"  # DER SEQUENCE


def test_tls_negotiates_alpn(ca: trustme.CA, ca_file: Path) -> None:
    # The trustme server context has no ALPN: the field must then be empty, not invented.
    with tcp_server("tls", ca.issue_cert("example.com")) as port:
        record = handshake(port, "example.com", ca_file)
    assert record.negotiated_protocol == ""


@pytest.mark.parametrize(
    ("issue", "server_name", "failure"),
    [
        (lambda ca: ca.issue_cert("other.test"), "example.com", "ssl_invalid_hostname"),
        (lambda ca: trustme.CA().issue_cert("example.com"), "example.com", "ssl_unknown_authority"),
        (
            lambda ca: ca.issue_cert(
                "example.com",
                not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
            ),
            "example.com",
            "ssl_invalid_certificate",
        ),
    ],
    ids=["wrong-host", "unknown-ca", "expired"],
)
def test_tls_certificate_failures(ca: trustme.CA, ca_file: Path, issue, server_name, failure) -> None:  # type: ignore[no-untyped-def]
    with tcp_server("tls", issue(ca)) as port:
        record = handshake(port, server_name, ca_file)
    assert record.failure == failure
    assert record.peer_certificates == ()


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        ("reset_after_hello", "connection_reset"),
        ("close_after_hello", "eof_error"),
        ("accept", "generic_timeout_error"),
    ],
)
def test_tls_interference(ca_file: Path, behaviour: Behaviour, failure: str) -> None:
    with tcp_server(behaviour) as port:
        record = handshake(port, "x.com", ca_file, timeout=0.5)
    assert record.failure == failure
    assert record.server_name == "x.com"
    assert record.t - record.t0 < 2.0


def test_tls_timeout_is_bounded(ca_file: Path) -> None:
    with tcp_server("accept") as port:
        record = handshake(port, "x.com", ca_file, timeout=0.3)
    assert record.failure == "generic_timeout_error"
    assert 0.25 <= record.t - record.t0 < 1.0


def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--ca-file .*missing\.pem"):
        tls.make_ssl_context(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="not a PEM CA file"):
        tls.make_ssl_context(garbage)


def test_load_client_contexts_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--ca-file .*missing\.pem: No such file or directory$"):
        tls.load_client_contexts(tmp_path / "missing.pem")
    bad = [("garbage.pem", b"not a certificate\n"), ("empty.pem", b""), ("der.pem", b"\x30\x82\x01")]
    for name, content in bad:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError, match=rf"^--ca-file .*{name}: not a PEM CA file$"):
            tls.load_client_contexts(tmp_path / name)


def test_contexts_cross_a_pickle_trusting_what_was_read(ca: trustme.CA, tmp_path: Path) -> None:
    """A round's process gets the contexts its daemon built: they trust the CA file as the
    daemon read it, even once the file is gone, and nothing else."""
    bundle = tmp_path / "bundle.pem"
    # curl's cacert.pem has UTF-8 in its comments, which OpenSSL skips.
    bundle.write_bytes("# Főtanúsítvány\n".encode() + ca.cert_pem.bytes())
    contexts = tls.load_client_contexts(bundle)
    bundle.unlink()
    copy = pickle.loads(pickle.dumps(contexts))
    assert copy.trust == contexts.trust and copy.handshake is not contexts.handshake
    assert copy.handshake.get_ca_certs() == contexts.handshake.get_ca_certs() != []
    with tcp_server("tls", ca.issue_cert("example.com")) as port:
        trusted = handshake(port, "example.com", None, context=copy.handshake)
    with tcp_server("tls", trustme.CA().issue_cert("example.com")) as port:
        stranger = handshake(port, "example.com", None, context=copy.handshake)
    assert (trusted.failure, stranger.failure) == (None, "ssl_unknown_authority")
    assert copy.handshake.get_ca_certs() == copy.httpx.get_ca_certs()

    system = pickle.loads(pickle.dumps(tls.load_client_contexts()))
    assert system.trust == tls.Trust(None)
    assert system.handshake.cert_store_stats() == tls.make_ssl_context().cert_store_stats()


def test_a_ca_file_loads_as_openssl_reads_one(ca: trustme.CA, tmp_path: Path) -> None:
    """OpenSSL's "trusted certificate" blocks (Fedora's ca-bundle.trust.crt) load as they did
    from the file; a file that says "system" is no PEM CA file, not the system store."""
    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    trusted = tmp_path / "trust.crt"  # an X509_AUX block: the DER certificate, then its (empty) trust
    body = base64.encodebytes(der + b"\x30\x00").decode()
    trusted.write_text(f"-----BEGIN TRUSTED CERTIFICATE-----\n{body}-----END TRUSTED CERTIFICATE-----\n")
    assert tls.make_ssl_context(trusted).get_ca_certs() != []  # OpenSSL's own reading of the file
    loaded = tls.load_client_contexts(trusted)
    assert loaded.handshake.get_ca_certs() == tls.make_ssl_context(trusted).get_ca_certs()
    assert pickle.loads(pickle.dumps(loaded)).handshake.get_ca_certs() == loaded.handshake.get_ca_certs()
    word = tmp_path / "system.pem"
    word.write_text("system")
    with pytest.raises(ConfigError, match=rf"^--ca-file {word}: not a PEM CA file$"):
        tls.load_client_contexts(word)


def test_contexts_made_by_hand_refuse_to_be_pickled() -> None:
    context = tls.make_ssl_context()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(tls.ClientContexts(context, context))


def test_without_a_temporary_directory_a_pem_file_still_loads(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trust goes through a temporary file; where none can be made (a read-only /tmp),
    the bytes are read as PEM text: plain certificates still load, nothing else does."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes("# Főtanúsítvány\n".encode() + ca.cert_pem.bytes())
    loaded = tls.load_client_contexts(bundle)
    assert loaded.handshake.get_ca_certs() == tls.make_ssl_context(bundle).get_ca_certs() != []
    assert pickle.loads(pickle.dumps(loaded)).httpx.get_ca_certs() == loaded.httpx.get_ca_certs()
    for name, content in [("empty.pem", b""), ("word.pem", b"system")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError, match=rf"^--ca-file .*{name}: not a PEM CA file$"):
            tls.load_client_contexts(tmp_path / name)
