"""What a person reads for one URL, end to end on loopback (issue 10, "One verdict for people").

Each test measures a real loopback site (and, where it says so, a loopback helper and a scripted
resolver) and checks the verdict keys and the outcome a person reads, exactly. ``localhost``
resolves from /etc/hosts for the helper; the probe's own lookups go where each test says.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest

from probe import webconnectivity
from probe.fingerprints import default_fingerprints
from probe.helper.app import HelperSettings
from probe.helper.geo import Geo
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.model import HTTPResponse, Measurement
from probe.outcome import describe, measurement_outcome
from probe.steps import dns
from probe.webconnectivity import MeasureConfig
from tests.servers.dns_server import ScriptedDNSServer
from tests.servers.helper_server import running_helper
from tests.servers.http_server import HTTPServer, http_server
from tests.servers.tcp_server import closed_port

LOOPBACK = ("127.0.0.0/8", "::1/128")

CLOUDFLARE = (
    b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
    b"<body><h1>Sorry, you have been blocked</h1><p>Cloudflare Ray ID: 8a1b2c3d4e5f6789</p></body></html>"
)
AKAMAI = (
    b"<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n \n"
    b'You don\'t have permission to access "http&#58;&#47;&#47;localhost&#47;" on this server.<P>\n'
    b"Reference&#32;&#35;18&#46;5e2c1002&#46;1700000000&#46;1a2b3c4d\n</BODY>\n</HTML>\n"
)
GEO_COUNTRY = (
    b"<html><head><title>Unavailable</title></head><body><p>We're sorry, this content is not "
    b"available in your country.</p></body></html>"
)
GEO_REGION = (
    b"<html><head><title>Service unavailable</title></head><body><p>This service is not available "
    b"in your region.</p></body></html>"
)
REFUSALS = {
    "/cloudflare": (403, CLOUDFLARE, (("Server", "cloudflare"), ("CF-RAY", "8a1b2c3d4e5f6789-KHI"))),
    "/akamai": (403, AKAMAI, (("Server", "AkamaiGHost"),)),
    "/geo-country": (451, GEO_COUNTRY, ()),
    "/geo-region": (403, GEO_REGION, ()),
}


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A site (or its CDN) that refuses every client with one of :data:`REFUSALS`."""

    def do_GET(self) -> None:
        status, body, headers = REFUSALS.get(self.path, (200, b"<html><title>ok</title></html>", ()))
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def refusing_site() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def site() -> Iterator[HTTPServer]:
    with http_server() as server:
        yield server


@pytest.fixture(scope="module")
def helper() -> Iterator[str]:
    settings = HelperSettings(
        config=HelperConfig(dns_timeout=2, tcp_timeout=2, tls_timeout=2, http_timeout=3),
        policy=AddressPolicy.allowing(LOOPBACK),
        geo=Geo(asn_of=lambda ip: 64500, cc_of=lambda ip: "PK"),
    )
    with running_helper(settings) as url:
        yield url


def measure(url: str, control_url: str | None, **changes: object) -> Measurement:
    config = MeasureConfig(allow_loopback=True, control_url=control_url, public_networks=LOOPBACK, **changes)  # type: ignore[arg-type]  # keyword fields
    return asyncio.run(webconnectivity.measure(url, config=config.with_timeout(3)))


def reads(m: Measurement) -> dict[str, object]:
    """The keys beside the outcome a person reads."""
    k = m.test_keys
    return {
        "dns_experiment_failure": k.dns_experiment_failure,
        "dns_consistency": k.dns_consistency,
        "blocking": k.blocking,
        "accessible": k.accessible,
        "mechanism": k.mechanism,
        "confirmed": k.confirmed,
        "control_failure": k.control_failure,
        "outcome": describe(measurement_outcome(k), confirmed=k.confirmed),
    }


def test_configured_resolver_nxdomain_without_the_system_resolver_is_dns_blocking(
    site: HTTPServer, helper: str
) -> None:
    """Was: ``mechanism down``, ``dns_experiment_failure`` null, ``blocking`` null: the lie hidden."""
    with ScriptedDNSServer({}) as lying:  # NXDOMAIN for every name, localhost included
        resolver = dns.parse_resolver(lying.address)
        m = measure(
            f"http://localhost:{site.port}/", helper, use_system_resolver=False, resolvers=(resolver,)
        )
    assert reads(m) == {
        "dns_experiment_failure": "dns_nxdomain_error",
        "dns_consistency": "inconsistent",
        "blocking": "dns",
        "accessible": False,
        "mechanism": "dns.nxdomain",
        "confirmed": None,
        "control_failure": None,
        "outcome": "blocked (anomaly)",
    }


def test_control_none_is_not_an_unreachable_control(site: HTTPServer) -> None:
    """Was: ``control.unreachable`` although no control was configured (``--control none``)."""
    m = measure(f"http://localhost:{site.port}/", None)
    assert reads(m) == {
        "dns_experiment_failure": None,
        "dns_consistency": None,
        "blocking": None,
        "accessible": None,
        "mechanism": "control.none",
        "confirmed": None,
        "control_failure": "control_not_configured",
        "outcome": "no verdict (no control)",
    }


def test_without_a_control_the_mechanism_says_what_the_probe_saw() -> None:
    """Was: ``control.unreachable`` for a refused connection: the probe saw more."""
    m = measure(f"http://localhost:{closed_port()}/", None)
    assert reads(m) == {
        "dns_experiment_failure": None,
        "dns_consistency": None,
        "blocking": None,
        "accessible": None,
        "mechanism": "tcp.refused",
        "confirmed": None,
        "control_failure": "control_not_configured",
        "outcome": "no verdict (no control)",
    }


def test_an_unreachable_control_still_says_what_the_probe_saw() -> None:
    m = measure(f"http://localhost:{closed_port()}/", f"http://127.0.0.1:{closed_port()}/")
    assert (m.test_keys.mechanism, m.test_keys.control_failure) == ("tcp.refused", "connection_refused")
    assert describe(measurement_outcome(m.test_keys)) == "no verdict (control failed)"


@pytest.mark.parametrize(
    ("path", "blocking", "accessible"),
    [
        # The helper is refused the same way: no HTTP diff, OONI's (false, true).
        ("/cloudflare", False, True),
        ("/akamai", False, True),
        ("/geo-country", False, True),
        ("/geo-region", False, True),
    ],
)
def test_server_side_refusals_are_not_censorship(
    refusing_site: int, helper: str, path: str, blocking: object, accessible: object
) -> None:
    m = measure(f"http://localhost:{refusing_site}{path}", helper)
    assert reads(m) == {
        "dns_experiment_failure": None,
        "dns_consistency": "consistent",
        "blocking": blocking,
        "accessible": accessible,
        "mechanism": "server.block",
        "confirmed": None,
        "control_failure": None,
        "outcome": "refused by the site (not censorship)",
    }


def test_a_page_that_only_mentions_access_denied_is_not_a_server_refusal() -> None:
    """Censors say "Access Denied" too: only Akamai's own page is a server refusal."""
    body = b"<html><title>Access Denied</title><body>Access Denied</body></html>"
    censor = HTTPResponse(403, (), body, False, len(body), "Access Denied")
    assert default_fingerprints().match_http(censor) is None
