"""Running the collector with hypercorn, hardened exactly as the helper's server is.

The collector serves strangers too, so it runs on :class:`probe.helper.server.HelperServer`:
every connection has a deadline for its request head (slowloris), idle kept-alive connections
are closed, heads are capped, TLS offers HTTP/1.1 only, no access log is written and no
``X-Forwarded-*`` header is trusted — that module's docstring says how. Only the application
differs: the collector's (:mod:`probe.collector.app`), with its own idle deadline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

from probe.collector.app import CollectorSettings, create_app
from probe.collector.reportstore import ReportStore
from probe.helper.server import HelperServer, bind, tls_context

__all__ = ["CollectorServer", "bind", "make_server"]

CollectorServer: TypeAlias = HelperServer
"""The collector's HTTP(S) server: the helper's, serving the collector's application."""


def make_server(
    store: ReportStore,
    settings: CollectorSettings,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> CollectorServer:
    """The collector's server over *store*; TLS with *tls_cert* (key in it unless *tls_key*).

    Raises:
        OSError: the certificate or key cannot be read or used (``ssl.SSLError`` included).
    """
    tls = tls_context(tls_cert, tls_key) if tls_cert is not None else None
    return HelperServer(create_app(store, settings), idle_timeout_s=settings.limits.idle_timeout_s, tls=tls)
