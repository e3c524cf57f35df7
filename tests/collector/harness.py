"""A real collector on loopback for tests: ``with collector_at(db_url) as served: served.url``.

The collector runs in a thread of the test process, on its own event loop, over a store it
opens on *db_url* (SQLite file or PostgreSQL), with hypercorn exactly as ``probe collector
serve`` runs it. The uploader's tests use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from measurements.store.reports import Reports
from measurements.store.store import Store, open_store
from probe.collector.app import CollectorSettings
from probe.collector.server import CollectorServer, bind, make_server


@dataclass(frozen=True)
class Served:
    """A running collector."""

    url: str
    """``http://127.0.0.1:PORT`` (``https`` with a certificate), no trailing slash."""
    store: Store
    """The store it writes into (open: read it in the test)."""
    reports: Reports
    server: CollectorServer


@contextlib.contextmanager
def collector_at(
    db_url: str,
    settings: CollectorSettings | None = None,
    *,
    host: str = "127.0.0.1",
    tls_cert: Path | None = None,
) -> Iterator[Served]:
    """Serve a collector over the database at *db_url* on *host*, port 0, until the block ends."""
    store = open_store(db_url)
    reports = Reports(store)
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    server = make_server(reports, settings or CollectorSettings(), tls_cert=tls_cert)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    try:
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the collector did not start"
            time.sleep(0.01)
        scheme = "https" if tls_cert is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        yield Served(f"{scheme}://{shown}:{port}", store, reports, server)
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        store.close()
