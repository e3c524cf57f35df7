"""Measurements built from the model dataclasses, one per verdict the store must summarise.

Deterministic: the same arguments give the same measurement (its id from the index), so golden
export files can pin exact bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from probe.model import (
    ControlDNS,
    ControlHTTPRequest,
    ControlResponse,
    ControlTCPConnect,
    DNSAnswer,
    DNSQuery,
    HTTPRequest,
    HTTPResponse,
    HTTPTransaction,
    Measurement,
    TCPConnect,
    TCPStatus,
    TLSHandshake,
    WebConnectivityTestKeys,
)

BASE = datetime(2024, 1, 20, 10, 0, 0, tzinfo=UTC)
V4, V6 = "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
KINDS = ("ok", "dns", "tcp", "sni", "blockpage", "down", "nocontrol")
"""Verdict scenarios: accessible; DNS, TCP/IP and SNI blocking; a blockpage; site down; no control."""


def uid(i: int) -> str:
    """A fixed ``measurement_uid`` in OONI's form for measurement number *i*."""
    return f"20240120100000.000000_PK_webconnectivity_{i + 1:016x}"


def make_measurement(
    i: int = 0,
    *,
    kind: str = "ok",
    url: str = "https://example.com/",
    at: datetime = BASE,
    asn: str = "AS17557",
    cc: str = "PK",
    network_name: str = "Pakistan Telecommunication Company Limited",
    runtime_s: float = 1.25,
    probe_ip: str = "127.0.0.1",
    mechanism: str | None = None,
    confirmed: str | None = None,
) -> Measurement:
    """One Web Connectivity measurement of *url* whose steps and verdict match *kind*."""
    host = url.split("/")[2]
    dns_fail = "dns_nxdomain_error" if kind == "dns" else None
    answers = () if dns_fail else (DNSAnswer("A", ipv4=V4), DNSAnswer("AAAA", ipv6=V6))
    queries = (DNSQuery("getaddrinfo", "", host, "ANY", answers, None, dns_fail, 0.0, 0.01, 1),)
    tcp: tuple[TCPConnect, ...] = ()
    tls: tuple[TLSHandshake, ...] = ()
    requests: tuple[HTTPTransaction, ...] = ()
    if not dns_fail:
        # The volunteer has no IPv6: a failed connect that must not make the target "failing".
        v6 = TCPConnect(V6, 443, TCPStatus(False, "network_unreachable"), 0.01, 0.011, 2)
        v4_fail = {"tcp": "generic_timeout_error", "down": "connection_refused"}.get(kind)
        v4 = TCPConnect(V4, 443, TCPStatus(v4_fail is None, v4_fail), 0.011, 0.05, 3)
        tcp = (v6, v4)
        if v4_fail is None:
            tls_fail = "connection_reset" if kind == "sni" else None
            suite = "TLS_AES_128_GCM_SHA256"
            tls = (
                TLSHandshake(
                    f"{V4}:443", host, suite, "h2", "TLSv1.3", (), tls_fail, 0.05, 0.09, transaction_id=3
                ),
            )
            if tls_fail is None:
                page = b"<title>Blocked by PTA</title>" if kind == "blockpage" else b"<title>Example</title>"
                title = page[7:-8].decode()
                response = HTTPResponse(200, (("Content-Type", "text/html"),), page, False, len(page), title)
                request = HTTPRequest(url, "GET", (("Host", host),))
                requests = (HTTPTransaction(f"{V4}:443", request, response, None, 0.09, 0.2, "h2", "tcp", 3),)
    http_fail = {"dns": dns_fail, "tcp": "generic_timeout_error", "sni": "connection_reset"}.get(kind)
    http_fail = "connection_refused" if kind == "down" else http_fail
    control = None if kind == "nocontrol" else _control(kind)
    verdicts: dict[str, tuple[bool | str | None, bool | None, str | None]] = {
        "ok": (False, True, "ok"),
        "dns": ("dns", False, "dns.nxdomain"),
        "tcp": ("tcp_ip", False, "tcp.timeout"),
        "sni": ("http-failure", False, "tls.reset.sni"),
        "blockpage": ("http-diff", False, "http.blockpage"),
        "down": (False, False, "down"),
        "nocontrol": (None, None, "control.unreachable"),
    }
    blocking, accessible, default_mechanism = verdicts[kind]
    keys = WebConnectivityTestKeys(
        queries=queries,
        tcp_connect=tcp,
        tls_handshakes=tls,
        requests=requests,
        control=control,
        control_failure="generic_timeout_error" if kind == "nocontrol" else None,
        dns_experiment_failure=dns_fail,
        http_experiment_failure=http_fail,
        dns_consistency=None if kind == "nocontrol" else ("inconsistent" if dns_fail else "consistent"),
        blocking=blocking,
        accessible=accessible,
        mechanism=mechanism or default_mechanism,
        confirmed=confirmed or ("pk_pta_blockpage" if kind == "blockpage" else None),
    )
    return Measurement(
        input=url,
        measurement_start_time=at,
        test_start_time=at,
        test_runtime=runtime_s,
        software_name="reachprobe",
        software_version="0.1.0",
        test_keys=keys,
        measurement_uid=uid(i),
        report_id=f"{at:%Y%m%dT%H%M%SZ}_webconnectivity_{cc}_{asn.removeprefix('AS')}_n1_reachprobetests0",
        test_helper="https://th.example.org/",
        probe_asn=asn,
        probe_cc=cc,
        probe_network_name=network_name,
        probe_ip=probe_ip,
    )


def _control(kind: str) -> ControlResponse:
    down = kind == "down"
    return ControlResponse(
        tcp_connect={f"{V4}:443": ControlTCPConnect(not down, "connection_refused" if down else None)},
        tls_handshake={},
        http_request=ControlHTTPRequest(-1, "connection_refused", "", {}, -1)
        if down
        else ControlHTTPRequest(22, None, "Example", {"Content-Type": "text/html"}, 200),
        dns=ControlDNS(None, (V4,)),
        ip_info={},
    )


def make_round(
    n: int,
    *,
    first: int = 0,
    at: datetime = BASE,
    asn: str = "AS17557",
    kinds: tuple[str, ...] = KINDS,
    step: timedelta = timedelta(seconds=1),
) -> list[Measurement]:
    """*n* measurements of distinct URLs, numbered from *first*, cycling through *kinds*."""
    return [
        make_measurement(
            first + j, kind=kinds[j % len(kinds)], url=f"https://site{j}.example/", at=at + j * step, asn=asn
        )
        for j in range(n)
    ]


def stream(n: int, *, per_round: int = 1000) -> Iterator[list[Measurement]]:
    """*n* measurements in rounds of *per_round*, one hour apart."""
    for r, first in enumerate(range(0, n, per_round)):
        yield make_round(min(per_round, n - first), first=first, at=BASE + timedelta(hours=r))
