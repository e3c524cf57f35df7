"""Shared fixtures: a private data directory, a lab-style CA, loopback sites with their resolver, and
``store_url`` over SQLite and the run's one throw-away PostgreSQL cluster (``pg_cluster``)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.offnet import guard
from tests.postgres import pg_cluster, store_url
from tests.servers.dns_server import Reply, ScriptedDNSServer
from tests.servers.http_server import HTTPServer, http_server

__all__ = ["pg_cluster", "store_url"]  # the run's one PostgreSQL cluster (tests/postgres.py), for every test


@pytest.fixture(autouse=True)
def offline_only() -> Iterator[None]:
    """Every test fails if it tried to reach a global address (:mod:`tests.offnet`)."""
    with guard() as seen:
        yield
    if seen:
        pytest.fail(f"the test tried to reach the Internet: {', '.join(sorted(set(seen)))}")


@pytest.fixture(autouse=True)
def probe_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's own platform data directory for reachprobe (not created: the store makes it).

    Never the real user's: the default database and the installation id (with its round
    locks) live there. platformdirs follows ``XDG_DATA_HOME`` on Linux, and the processes a
    test starts (daemons, forked writers) inherit it.
    """
    home = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "reachprobe"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throw-away certificate authority that the probe trusts via ``--ca-file``."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The CA certificate as a PEM file."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield path


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A fresh client context trusting the test CA (httpx rewrites a context's ALPN list)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


LOOPBACK_NAMES = {
    "example.com": Reply(a=("127.0.0.1",)),
    "xn--d1acpjx3f.xn--p1ai": Reply(a=("127.0.0.1",)),  # яндекс.рф
    "nx.example": Reply(rcode="NXDOMAIN"),
}
"""The scripted DNS of the end-to-end tests: every site lives on 127.0.0.1."""


@pytest.fixture(scope="module")
def loopback_dns() -> Iterator[ScriptedDNSServer]:
    """A scripted resolver (UDP and TCP) answering :data:`LOOPBACK_NAMES`, NXDOMAIN otherwise."""
    with ScriptedDNSServer(LOOPBACK_NAMES) as server:
        yield server


@pytest.fixture(scope="module")
def http_site() -> Iterator[HTTPServer]:
    """The scripted HTTP routes (tests/servers/http_server.py) on 127.0.0.1."""
    with http_server() as server:
        yield server


@pytest.fixture(scope="module")
def https_site(ca: trustme.CA) -> Iterator[HTTPServer]:
    """The same routes over HTTPS, with a certificate for ``example.com`` and ``127.0.0.1``."""
    with http_server(ca.issue_cert("example.com", "127.0.0.1")) as server:
        yield server
