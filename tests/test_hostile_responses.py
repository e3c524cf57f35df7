"""Every response the probe reads is bounded: compression bombs from a control, whoami, DoH or a site.

The server (tests/servers/http_server.py ``/zip-bomb/KIND``) sends 10 MB of zeros compressed
to about 10 KB — gzip, zlib deflate, raw deflate, gzip inside gzip (declared as a chain or as
one gzip) and gzip in 1 KiB chunks. Each reader must stop at its own cap with its failure
string, and the memory it takes must stay near that cap, not near 10 MB (tracemalloc counts
every Python allocation in the process, the server thread's included).
"""

from __future__ import annotations

import asyncio
import ssl
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import trustme

from probe import control
from probe.model import DNSQuery, HTTPTransaction
from probe.steps import dns, http, tls
from probe.steps.clock import relative_clock
from probe.steps.dns import ResolverSpec
from tests.servers.http_server import ZIP_BOMB_KINDS, HTTPServer, http_server, zip_bomb

T = TypeVar("T")
MiB = 1024 * 1024
CONTROL_PEAK = 8 * MiB
"""Peak for a control/whoami bomb: 2.2 MB alone, up to 4.1 MB in the full suite, where
tracemalloc also counts other threads of the process (the loopback servers); the unbounded
reader took 24 MB here, and the bomb inflates to 10 MB."""


@pytest.fixture(scope="module")
def site(ca: trustme.CA) -> Iterator[HTTPServer]:
    with http_server(ca.issue_cert("127.0.0.1")) as server:
        yield server


@pytest.fixture(scope="module")
def plain_site() -> Iterator[HTTPServer]:
    with http_server() as server:
        yield server


def traced(make: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, int]:
    """Run the coroutine *make* gives, once untraced (lazy imports, caches), then traced.

    Returns:
        The traced run's result and the peak of memory allocated during it, in bytes.
    """
    asyncio.run(make())
    results: list[T] = []

    async def run() -> None:
        results.append(await make())  # not returned: asyncio.run would repr the result

    tracemalloc.start()
    try:
        asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return results[0], peak


@pytest.fixture(autouse=True)
def _bombs_built() -> None:
    for kind in ZIP_BOMB_KINDS:  # built before tracing: only the client side counts
        zip_bomb(kind)


@pytest.mark.parametrize("kind", ZIP_BOMB_KINDS)
def test_control_response_bomb(plain_site: HTTPServer, kind: str) -> None:
    helper = f"http://127.0.0.1:{plain_site.port}/zip-bomb/{kind}/"
    request = control.build_request("http://x.test/", [], port=80)
    context = tls.make_ssl_context(alpn=())
    result, peak = traced(lambda: control.call(helper, request, timeout=10, ssl_context=context))
    assert result == (None, "json_parse_error")
    # The 1 MiB cap held at most twice (buffer and result) and a few reads: never the 10 MB.
    assert peak < CONTROL_PEAK, peak


@pytest.mark.parametrize("kind", ZIP_BOMB_KINDS)
def test_control_response_bomb_over_https(
    site: HTTPServer, client_context: ssl.SSLContext, kind: str
) -> None:
    helper = f"https://127.0.0.1:{site.port}/zip-bomb/{kind}/"
    request = control.build_request("http://x.test/", [], port=80)
    result, peak = traced(lambda: control.call(helper, request, timeout=10, ssl_context=client_context))
    assert result == (None, "json_parse_error")
    assert peak < CONTROL_PEAK, peak


@pytest.mark.parametrize("kind", ZIP_BOMB_KINDS)
def test_whoami_bomb(plain_site: HTTPServer, kind: str) -> None:
    helper = f"http://127.0.0.1:{plain_site.port}/zip-bomb/{kind}/"
    context = tls.make_ssl_context(alpn=())
    result, peak = traced(lambda: control.whoami(helper, timeout=10, ssl_context=context))
    assert result is None
    assert peak < CONTROL_PEAK, peak


@pytest.mark.parametrize("kind", ZIP_BOMB_KINDS)
def test_doh_answer_bomb(site: HTTPServer, client_context: ssl.SSLContext, kind: str) -> None:
    resolver = ResolverSpec("doh", "", 0, url=f"https://127.0.0.1:{site.port}/zip-bomb/{kind}/dns-query")

    async def lookup() -> DNSQuery:
        return await dns.resolve(
            "example.com",
            "A",
            resolver=resolver,
            timeout=10,
            clock=relative_clock(),
            ssl_context=client_context,
        )

    query, peak = traced(lookup)
    assert (query.engine, query.failure, query.rcode, query.answers) == (
        "doh",
        "dns_server_misbehaving",
        None,
        (),
    )
    assert peak < MiB, peak  # a DNS message is at most 64 KiB


@pytest.mark.parametrize("kind", ZIP_BOMB_KINDS)
def test_site_bomb(plain_site: HTTPServer, kind: str) -> None:
    async def fetch() -> HTTPTransaction:
        return await http.fetch(
            plain_site.url(f"/zip-bomb/{kind}"),
            address="127.0.0.1",
            ssl_context=ssl.create_default_context(),
            timeout=10,
            clock=relative_clock(),
        )

    record, peak = traced(fetch)
    assert record.failure is None and record.response is not None
    assert record.response.body_length == len(record.response.body) <= http.BODY_LIMIT
    if kind in ("nested", "nested-once"):
        # A chain is kept as received; a gzip inside one gzip is inflated once: either way
        # what is kept is the 10 KB inner gzip, whole.
        assert not record.response.body_is_truncated
    else:
        assert record.response.body == bytes(http.BODY_LIMIT)
        assert record.response.body_is_truncated
    assert peak < 2 * http.BODY_LIMIT + MiB, peak
