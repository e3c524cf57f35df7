"""Small constructors for probe observations and control responses, marked as webconnectivity marks them.

Steps carry their hop (``depth``); lookups of the system resolver and the endpoints whose address
it returned are also ``classic``. ``keys(...)`` takes the steps of a measurement in time order and
stores ``requests`` in OONI's reverse time order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import count

from probe.analysis import Evaluation, analyse, evaluate
from probe.fingerprints import FingerprintDB, default_fingerprints
from probe.model import (
    ControlDNS,
    ControlHTTPRequest,
    ControlIPInfo,
    ControlResponse,
    ControlTCPConnect,
    ControlTLSHandshake,
    DNSAnswer,
    DNSEngine,
    DNSQuery,
    HTTPRequest,
    HTTPResponse,
    HTTPTransaction,
    TCPConnect,
    TCPStatus,
    TLSHandshake,
    WebConnectivityTestKeys,
)
from probe.steps.urls import endpoint

HOST = "example.org"
HTTP_URL = f"http://{HOST}/"
HTTPS_URL = f"https://{HOST}/"
IP = "93.184.215.14"
"""The site's address, as the control resolves it too (AS 15133)."""
IP_SAME_AS = "93.184.215.200"
"""Another address in the site's network."""
IP_OTHER = "198.252.206.16"
"""An address in an unrelated network (AS 64777)."""
IPV6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
ASNS = {IP: 15133, IP_SAME_AS: 15133, IPV6: 15133, IP_OTHER: 64777}
PAGE = b"<html><head><title>Example Domain</title></head><body>" + b"x" * 1200 + b"</body></html>"
PAGE_HEADERS = (("Content-Type", "text/html"), ("Content-Length", str(len(PAGE))), ("X-Cache", "HIT"))

_ids = count(1)


def asn_of(ip: str) -> int:
    """The tests' IP → ASN table."""
    return ASNS.get(ip, 0)


def query(
    *addresses: str,
    failure: str | None = None,
    depth: int = 0,
    classic: bool = True,
    engine: DNSEngine = "getaddrinfo",
    hostname: str = HOST,
    query_type: str = "ANY",
) -> DNSQuery:
    """A lookup of *hostname*; ``engine="getaddrinfo"`` is the system resolver."""
    answers = tuple(
        DNSAnswer("AAAA", ipv6=a) if ":" in a else DNSAnswer("A", ipv4=a)
        for a in (() if failure else addresses)
    )
    return DNSQuery(
        engine=engine,
        resolver_address="" if engine == "getaddrinfo" else "8.8.8.8:53",
        hostname=hostname,
        query_type=query_type,
        answers=answers,
        rcode=None if engine == "getaddrinfo" else ("NOERROR" if failure is None else "NXDOMAIN"),
        failure=failure,
        t0=0.0,
        t=0.1,
        transaction_id=next(_ids),
        depth=depth,
        classic=classic,
    )


def connect(
    ip: str, port: int, failure: str | None = None, *, depth: int = 0, classic: bool = True
) -> TCPConnect:
    """A TCP connect; its transaction id is shared with the :func:`handshake` that follows."""
    return TCPConnect(
        ip, port, TCPStatus(failure is None, failure), 0.1, 0.2, next(_ids), depth=depth, classic=classic
    )


def handshake(tcp: TCPConnect, failure: str | None = None, *, server_name: str = HOST) -> TLSHandshake:
    """The TLS handshake over *tcp*."""
    return TLSHandshake(
        address=endpoint(tcp.ip, tcp.port),
        server_name=server_name,
        cipher_suite="" if failure else "TLS_AES_128_GCM_SHA256",
        negotiated_protocol="",
        tls_version="" if failure else "TLSv1.3",
        peer_certificates=(),
        failure=failure,
        t0=0.2,
        t=0.3,
        transaction_id=tcp.transaction_id,
        depth=tcp.depth,
        classic=tcp.classic,
    )


def response(
    code: int = 200,
    body: bytes = PAGE,
    headers: Iterable[tuple[str, str]] = PAGE_HEADERS,
    *,
    title: str | None = None,
    truncated: bool = False,
) -> HTTPResponse:
    """A response; the title defaults to the one in *body*."""
    if title is None:
        start, end = body.find(b"<title>"), body.find(b"</title>")
        title = body[start + 7 : end].decode() if start >= 0 and end > start else ""
    return HTTPResponse(code, tuple(headers), body, truncated, len(body), title)


def fetch(
    url: str,
    tcp: TCPConnect,
    resp: HTTPResponse | None = None,
    failure: str | None = None,
) -> HTTPTransaction:
    """The HTTP round trip made through the endpoint of *tcp* (own transaction id, as webconnectivity's)."""
    return HTTPTransaction(
        address=endpoint(tcp.ip, tcp.port),
        request=HTTPRequest(url, "GET", (("Host", HOST),)),
        response=None if failure else resp or response(),
        failure=failure,
        t0=0.3,
        t=0.4,
        transaction_id=next(_ids),
        depth=tcp.depth,
        classic=tcp.classic,
    )


def keys(*steps: object) -> WebConnectivityTestKeys:
    """Test keys from *steps* in time order."""
    return WebConnectivityTestKeys(
        queries=tuple(s for s in steps if isinstance(s, DNSQuery)),
        tcp_connect=tuple(s for s in steps if isinstance(s, TCPConnect)),
        tls_handshakes=tuple(s for s in steps if isinstance(s, TLSHandshake)),
        requests=tuple(reversed([s for s in steps if isinstance(s, HTTPTransaction)])),
    )


def control(
    *,
    addrs: Iterable[str] = (IP,),
    dns_failure: str | None = None,
    tcp: Mapping[str, str | None] | None = None,
    tls: Mapping[str, str | None] | None = None,
    http_failure: str | None = None,
    body: bytes = PAGE,
    code: int = 200,
    headers: Iterable[tuple[str, str]] = PAGE_HEADERS,
    title: str | None = None,
    server_name: str = HOST,
    ip_info: Mapping[str, int] | None = None,
) -> ControlResponse:
    """The helper's response; ``tcp``/``tls`` map ``ip:port`` to the failure (``None``: success)."""
    page = response(code, body, headers, title=title)
    http = (
        ControlHTTPRequest(-1, http_failure, "", {}, -1)
        if http_failure
        else ControlHTTPRequest(page.body_length, None, page.title, dict(page.headers_list), page.code)
    )
    return ControlResponse(
        tcp_connect={k: ControlTCPConnect(v is None, v) for k, v in (tcp or {}).items()},
        tls_handshake={k: ControlTLSHandshake(server_name, v is None, v) for k, v in (tls or {}).items()},
        http_request=http,
        dns=ControlDNS(dns_failure, () if dns_failure else tuple(addrs)),
        ip_info={ip: ControlIPInfo(asn, 2) for ip, asn in (ip_info or {}).items()},
    )


_FINGERPRINTS: list[FingerprintDB] = []


def fingerprints() -> FingerprintDB:
    """The shipped fingerprints, loaded once."""
    if not _FINGERPRINTS:
        _FINGERPRINTS.append(default_fingerprints())
    return _FINGERPRINTS[0]


def run(
    measured: WebConnectivityTestKeys, ctrl: ControlResponse | None, url: str = HTTP_URL
) -> WebConnectivityTestKeys:
    """:func:`probe.analysis.analyse` with the tests' ASN table and the shipped fingerprints."""
    return analyse(
        measured,
        ctrl,
        control_failure=None if ctrl is not None else "connection_refused",
        url=url,
        asn_of=asn_of,
        fingerprints=fingerprints(),
    )


def explain(
    measured: WebConnectivityTestKeys, ctrl: ControlResponse | None, url: str = HTTP_URL
) -> Evaluation:
    """:func:`probe.analysis.evaluate` with the tests' ASN table."""
    return evaluate(measured, ctrl, url=url, asn_of=asn_of)
