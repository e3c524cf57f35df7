"""The mechanism label and fingerprint confirmation, one case per kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from probe.analysis import analyse
from probe.model import ControlResponse, WebConnectivityTestKeys
from tests.analysis.builders import (
    HTTP_URL,
    HTTPS_URL,
    IP,
    IP_OTHER,
    asn_of,
    connect,
    control,
    fetch,
    fingerprints,
    handshake,
    keys,
    query,
    response,
    run,
)

PAGES = Path(__file__).parent / "pages"
SURF_SAFELY = (PAGES / "surf_safely.html").read_bytes()
"""The national blockpage as injected (reference pakistan.md §2.3), verbatim."""
SAFEWEB = (PAGES / "safeweb.html").read_bytes()
"""Nayatel's opt-in Safeweb page (text of citizenlab's blockpage_meta/isp_pk_nayatel_block_optin.html)."""
BLOCKPAGE = b"<html><head><title>Blocked</title></head><body>Access denied</body></html>"
Scenario = tuple[WebConnectivityTestKeys, ControlResponse | None, str]


def _page(body: bytes, ip: str = IP, code: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Scenario:
    c = connect(ip, 80)
    measured = keys(query(ip), c, fetch(HTTP_URL, c, response(code, body, headers)))
    return measured, control(tcp={f"{ip}:80": None}), HTTP_URL


def _dns(failure: str) -> Scenario:
    return keys(query(failure=failure)), control(), HTTP_URL


def _tcp(failure: str) -> Scenario:
    return keys(query(IP), connect(IP, 80, failure)), control(tcp={f"{IP}:80": None}), HTTP_URL


def _tls(failure: str) -> Scenario:
    c = connect(IP, 443)
    ctrl = control(tcp={f"{IP}:443": None}, tls={f"{IP}:443": None})
    return keys(query(IP), c, handshake(c, failure)), ctrl, HTTPS_URL


def _http(failure: str) -> Scenario:
    c = connect(IP, 80)
    return keys(query(IP), c, fetch(HTTP_URL, c, failure=failure)), control(tcp={f"{IP}:80": None}), HTTP_URL


def _bogon() -> Scenario:
    bogon = "10.10.34.35"
    measured = keys(query(bogon), connect(bogon, 80, "generic_timeout_error"))
    return measured, control(tcp={f"{bogon}:80": "generic_timeout_error"}), HTTP_URL


def _dns_blockpage_ip(ip: str) -> Scenario:
    c = connect(ip, 80)
    measured = keys(query(ip), c, fetch(HTTP_URL, c, response(200, SURF_SAFELY, ())))
    return measured, control(tcp={f"{ip}:80": None}), HTTP_URL


def _wateen_redirect() -> Scenario:
    c = connect(IP, 80)
    location = "http://restrict.wateen.net/restrict/?url=example.org"
    moved = fetch(HTTP_URL, c, response(302, b"", (("Location", location),)))
    later = query(failure="dns_nxdomain_error", hostname="restrict.wateen.net", depth=1)
    return keys(query(IP), c, moved, later), control(tcp={f"{IP}:80": None}), HTTP_URL


def _https_ok(ctrl: ControlResponse | None) -> Scenario:
    c = connect(IP, 443)
    return keys(query(IP), c, handshake(c), fetch(HTTPS_URL, c)), ctrl, HTTPS_URL


CASES: list[tuple[str, Callable[[], Scenario], str | None, str | None]] = [
    ("dns.nxdomain", lambda: _dns("dns_nxdomain_error"), "dns.nxdomain", None),
    ("dns.nxdomain-nodata", lambda: _dns("dns_no_answer"), "dns.nxdomain", None),
    ("dns.timeout", lambda: _dns("generic_timeout_error"), "dns.timeout", None),
    ("dns.refused", lambda: _dns("dns_refused_error"), "dns.refused", None),
    ("dns.servfail", lambda: _dns("dns_servfail_error"), "dns.servfail", None),
    ("dns.bogon", _bogon, "dns.bogon", None),
    ("dns.localhost", lambda: (keys(query("127.0.0.1")), control(), HTTP_URL), "dns.localhost", None),
    ("dns.blockpage-surf-safely-ip", lambda: _dns_blockpage_ip("203.82.48.83"), "dns.blockpage", "ooni.pk_3"),
    ("dns.blockpage-safeweb-is-opt-in", lambda: _dns_blockpage_ip("203.82.48.86"), "dns.blockpage", None),
    ("dns.blockpage-unknown-address", lambda: _page(BLOCKPAGE, IP_OTHER), "dns.blockpage", None),
    ("tcp.timeout", lambda: _tcp("generic_timeout_error"), "tcp.timeout", None),
    ("tcp.reset", lambda: _tcp("connection_reset"), "tcp.reset", None),
    ("tcp.refused", lambda: _tcp("connection_refused"), "tcp.refused", None),
    ("tcp.refused-icmp", lambda: _tcp("host_unreachable"), "tcp.refused", None),
    ("tls.reset.sni", lambda: _tls("connection_reset"), "tls.reset.sni", None),
    ("tls.timeout", lambda: _tls("generic_timeout_error"), "tls.timeout", None),
    ("tls.eof", lambda: _tls("eof_error"), "tls.eof", None),
    ("tls.mitm-unknown-authority", lambda: _tls("ssl_unknown_authority"), "tls.mitm", None),
    ("tls.mitm-invalid-hostname", lambda: _tls("ssl_invalid_hostname"), "tls.mitm", None),
    ("http.reset", lambda: _http("connection_reset"), "http.reset", None),
    ("http.reset-eof", lambda: _http("eof_error"), "http.reset", None),
    ("http.timeout", lambda: _http("generic_timeout_error"), "http.timeout", None),
    (
        "http.blockpage-surf-safely",
        lambda: _page(SURF_SAFELY),
        "http.blockpage",
        "cp.b_nat_pak_isp_common_blockpage",
    ),
    ("http.blockpage-safeweb-is-opt-in", lambda: _page(SAFEWEB), "http.blockpage", None),
    ("http.redirect-wateen", _wateen_redirect, "http.redirect", "cp.c_isp_pk_wateen_location"),
    ("http.diff", lambda: _page(BLOCKPAGE), "http.diff", None),
    (
        "no-control-tcp-timeout-is-what-the-probe-saw",
        lambda: (keys(query(IP), connect(IP, 80, "generic_timeout_error")), None, HTTP_URL),
        "tcp.timeout",
        None,
    ),
    (
        "no-control-nxdomain-is-what-the-probe-saw",
        lambda: (keys(query(failure="dns_nxdomain_error")), None, HTTP_URL),
        "dns.nxdomain",
        None,
    ),
    (
        "control.unreachable-page-loaded",
        lambda: (lambda c: (keys(query(IP), c, fetch(HTTP_URL, c)), None, HTTP_URL))(connect(IP, 80)),
        "control.unreachable",
        None,
    ),
    ("ok", lambda: _https_ok(None), "ok", None),
    (
        "down",
        lambda: (keys(query(failure="dns_nxdomain_error")), control(dns_failure="dns_name_error"), HTTP_URL),
        "down",
        None,
    ),
    ("down-nothing-matched", lambda: (keys(query(IP), connect(IP, 80)), control(), HTTP_URL), "down", None),
    ("nothing-measured", lambda: (keys(), None, HTTP_URL), None, None),
]


@pytest.mark.parametrize(
    ("make", "mechanism", "confirmed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_mechanism(make: Callable[[], Scenario], mechanism: str | None, confirmed: str | None) -> None:
    measured, ctrl, url = make()
    verdict = run(measured, ctrl, url)
    assert (verdict.mechanism, verdict.confirmed) == (mechanism, confirmed)


def test_surf_safely_page_verbatim_is_confirmed_even_where_http_diff_says_so() -> None:
    measured, ctrl, url = _page(SURF_SAFELY)
    verdict = run(measured, ctrl, url)
    assert (verdict.blocking, verdict.accessible) == ("http-diff", False)
    assert (verdict.mechanism, verdict.confirmed) == ("http.blockpage", "cp.b_nat_pak_isp_common_blockpage")


def test_dns_blockpage_keeps_the_dns_verdict() -> None:
    """The Surf Safely IP serves the Surf Safely page: DNS is the cause, and OONI says "dns"."""
    verdict = run(*_dns_blockpage_ip("203.82.48.83"))
    assert (verdict.dns_consistency, verdict.blocking, verdict.accessible) == ("inconsistent", "dns", False)


def test_tls_reset_after_a_redirect_without_per_endpoint_control() -> None:
    c = connect(IP, 80)
    moved = fetch(HTTP_URL, c, response(301, b"", (("Location", "https://www.example.org/"),)))
    later = connect(IP_OTHER, 443, depth=1)
    measured = keys(
        query(IP),
        c,
        moved,
        query(IP_OTHER, hostname="www.example.org", depth=1),
        later,
        handshake(later, "connection_reset", server_name="www.example.org"),
    )
    verdict = run(measured, control(tcp={f"{IP}:80": None}))
    assert (verdict.blocking, verdict.mechanism) == ("http-failure", "tls.reset.sni")


def test_control_failure_means_no_control_even_with_a_response() -> None:
    measured, ctrl, _ = _tcp("connection_refused")
    verdict = analyse(
        measured,
        ctrl,
        control_failure="generic_timeout_error",
        url=HTTP_URL,
        asn_of=asn_of,
        fingerprints=fingerprints(),
    )
    assert (verdict.blocking, verdict.accessible, verdict.mechanism) == (None, None, "tcp.refused")
    assert (verdict.control, verdict.control_failure) == (ctrl, "generic_timeout_error")


def test_lab_world_addresses_are_blockpage_servers_not_bogons() -> None:
    """In the lab the "Internet" is 10.x: a lying resolver's 10.x answer is a blockpage server."""
    measured, ctrl, url = _page(BLOCKPAGE, "10.66.0.9")
    assert run(measured, ctrl, url).mechanism == "dns.bogon"
    verdict = analyse(
        measured,
        ctrl,
        control_failure=None,
        url=url,
        asn_of=asn_of,
        fingerprints=fingerprints(),
        public_networks=["10.66.0.0/16"],
    )
    assert (verdict.blocking, verdict.mechanism) == ("dns", "dns.blockpage")
