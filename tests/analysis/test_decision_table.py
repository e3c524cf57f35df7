"""Every row of the reference's blocking/accessible decision table (§1.5), one case each.

Each case builds the probe's steps and the control's response and checks the exact
``(blocking, accessible, http_experiment_failure)`` and the row that decided.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from probe.model import ControlResponse, HTTPResponse, WebConnectivityTestKeys
from tests.analysis.builders import (
    HTTP_URL,
    HTTPS_URL,
    IP,
    IP_OTHER,
    IP_SAME_AS,
    IPV6,
    connect,
    control,
    explain,
    fetch,
    handshake,
    keys,
    query,
    response,
    run,
)

WWW = "www.example.org"
BLOCKPAGE = response(200, b"<html><head><title>Blocked</title></head><body>no</body></html>", ())


@dataclass(frozen=True)
class Case:
    keys: WebConnectivityTestKeys
    control: ControlResponse | None
    url: str
    expected: tuple[object, object, object]
    rule: str


def _http_page(resp: HTTPResponse | None = None, ip: str = IP) -> tuple[object, ...]:
    c = connect(ip, 80)
    return (query(ip), c, fetch(HTTP_URL, c, resp))


def _redirected(location: str, *later: object) -> WebConnectivityTestKeys:
    """A first hop answering 302 to *location*, then the steps of the second hop."""
    c = connect(IP, 80)
    moved = fetch(HTTP_URL, c, response(302, b"", (("Location", location),)))
    return keys(query(IP), c, moved, *later)


def _case_1_1() -> Case:
    c = connect(IP, 443)
    return Case(
        keys(query(IP), c, handshake(c), fetch(HTTPS_URL, c)), None, HTTPS_URL, (False, True, None), "1.1"
    )


def _case_1_1_even_with_a_diff() -> Case:
    c = connect(IP, 443)
    measured = keys(query(IP), c, handshake(c), fetch(HTTPS_URL, c, BLOCKPAGE))
    ctrl = control(tcp={f"{IP}:443": None}, tls={f"{IP}:443": None})
    return Case(measured, ctrl, HTTPS_URL, (False, True, None), "1.1")


def _case_1_2() -> Case:
    return Case(keys(*_http_page()), None, HTTP_URL, (None, None, None), "1.2")


def _case_1_3() -> Case:
    return Case(keys(*_http_page()), control(tcp={f"{IP}:80": None}), HTTP_URL, (False, True, None), "1.3")


def _case_1_3_after_redirect() -> Case:
    c = connect(IP_SAME_AS, 80, depth=1)
    measured = _redirected(
        f"http://{WWW}/", query(IP_SAME_AS, hostname=WWW, depth=1), c, fetch(f"http://{WWW}/", c)
    )
    return Case(measured, control(tcp={f"{IP}:80": None}), HTTP_URL, (False, True, None), "1.3")


def _case_1_4() -> Case:
    ctrl = control(tcp={f"{IP}:80": None})
    return Case(keys(*_http_page(BLOCKPAGE)), ctrl, HTTP_URL, ("http-diff", False, None), "1.4")


def _case_1_4_control_fetch_failed() -> Case:
    ctrl = control(tcp={f"{IP}:80": None}, http_failure="generic_timeout_error")
    return Case(keys(*_http_page()), ctrl, HTTP_URL, ("http-diff", False, None), "1.4")


def _case_1_4_inconsistent_dns() -> Case:
    ctrl = control(tcp={f"{IP_OTHER}:80": None})
    return Case(keys(*_http_page(BLOCKPAGE, IP_OTHER)), ctrl, HTTP_URL, ("dns", False, None), "1.4")


def _http_failure(ctrl: ControlResponse | None, expected: tuple[object, object, object], rule: str) -> Case:
    c = connect(IP, 80)
    measured = keys(query(IP), c, fetch(HTTP_URL, c, failure="connection_reset"))
    return Case(measured, ctrl, HTTP_URL, expected, rule)


def _tls_failure(
    failure: str, ctrl: ControlResponse | None, expected: tuple[object, object, object], rule: str
) -> Case:
    c = connect(IP, 443)
    return Case(keys(query(IP), c, handshake(c, failure)), ctrl, HTTPS_URL, expected, rule)


def _case_3_1b_after_redirect() -> Case:
    c = connect(IP_SAME_AS, 443, depth=1)
    measured = _redirected(
        f"https://{WWW}/",
        query(IP_SAME_AS, hostname=WWW, depth=1),
        c,
        handshake(c, "connection_reset", server_name=WWW),
    )
    ctrl = control(tcp={f"{IP}:80": None})
    return Case(measured, ctrl, HTTP_URL, ("http-failure", False, "connection_reset"), "3.1b")


def _tcp_failure(
    failure: str, ctrl: ControlResponse | None, expected: tuple[object, object, object], rule: str
) -> Case:
    return Case(keys(query(IP), connect(IP, 80, failure)), ctrl, HTTP_URL, expected, rule)


def _case_4_1b_after_redirect() -> Case:
    later = (query(IP_OTHER, hostname=WWW, depth=1), connect(IP_OTHER, 80, "generic_timeout_error", depth=1))
    measured = _redirected(f"http://{WWW}/", *later)
    ctrl = control(tcp={f"{IP}:80": None})
    return Case(measured, ctrl, HTTP_URL, ("http-failure", False, "generic_timeout_error"), "4.1b")


def _dns_failure(
    failure: str, ctrl: ControlResponse | None, expected: tuple[object, object, object], rule: str
) -> Case:
    return Case(keys(query(failure=failure)), ctrl, HTTP_URL, expected, rule)


def _case_5_1b_after_redirect() -> Case:
    measured = _redirected(f"http://{WWW}/", query(failure="dns_nxdomain_error", hostname=WWW, depth=1))
    ctrl = control(tcp={f"{IP}:80": None})
    return Case(measured, ctrl, HTTP_URL, ("dns", False, "dns_nxdomain_error"), "5.1b")


def _case_ipv6_sibling_fails() -> Case:
    v4, v6 = connect(IP, 80), connect(IPV6, 80, "network_unreachable")
    measured = keys(query(IP, IPV6), v4, v6, fetch(HTTP_URL, v4))
    ctrl = control(addrs=(IP, IPV6), tcp={f"{IP}:80": None, f"[{IPV6}]:80": None})
    return Case(measured, ctrl, HTTP_URL, (False, True, None), "1.3")


CASES = [
    pytest.param(_case_1_1, id="1.1-https-final-without-control"),
    pytest.param(_case_1_1_even_with_a_diff, id="1.1-https-final-ignores-diff"),
    pytest.param(_case_1_2, id="1.2-http-final-no-control"),
    pytest.param(_case_1_3, id="1.3-no-diff"),
    pytest.param(_case_1_3_after_redirect, id="1.3-final-response-after-redirect"),
    pytest.param(_case_1_4, id="1.4-http-diff"),
    pytest.param(_case_1_4_control_fetch_failed, id="1.4-control-fetch-failed-is-diff"),
    pytest.param(_case_1_4_inconsistent_dns, id="1.4-BLOCK-becomes-dns-when-inconsistent"),
    pytest.param(lambda: _http_failure(None, (None, None, "connection_reset"), "2.1"), id="2.1"),
    pytest.param(
        lambda: _http_failure(
            control(tcp={f"{IP}:80": None}, http_failure="connection_reset"),
            (False, False, "connection_reset"),
            "2.2",
        ),
        id="2.2",
    ),
    pytest.param(
        lambda: _http_failure(
            control(tcp={f"{IP}:80": None}), ("http-failure", False, "connection_reset"), "2.3"
        ),
        id="2.3",
    ),
    pytest.param(
        lambda: _tls_failure("connection_reset", None, (None, None, "connection_reset"), "3.1a"), id="3.1a"
    ),
    pytest.param(_case_3_1b_after_redirect, id="3.1b-after-redirect"),
    pytest.param(
        lambda: _tls_failure(
            "connection_reset",
            control(tcp={f"{IP}:443": None}, tls={f"{IP}:443": None}, server_name="other.example"),
            ("http-failure", False, "connection_reset"),
            "3.1b",
        ),
        id="3.1b-control-handshake-with-another-sni",
    ),
    pytest.param(
        lambda: _tls_failure(
            "ssl_invalid_hostname",
            control(tcp={f"{IP}:443": None}, tls={f"{IP}:443": "ssl_invalid_hostname"}),
            (False, False, "ssl_invalid_hostname"),
            "3.2",
        ),
        id="3.2",
    ),
    pytest.param(
        lambda: _tls_failure(
            "connection_reset",
            control(tcp={f"{IP}:443": None}, tls={f"{IP}:443": None}),
            ("http-failure", False, "connection_reset"),
            "3.3",
        ),
        id="3.3",
    ),
    pytest.param(
        lambda: _tcp_failure("generic_timeout_error", None, (None, None, "generic_timeout_error"), "4.1a"),
        id="4.1a",
    ),
    pytest.param(_case_4_1b_after_redirect, id="4.1b-after-redirect"),
    pytest.param(
        lambda: _tcp_failure(
            "connection_refused",
            control(tcp={f"{IP}:80": "connection_refused"}),
            (False, False, "connection_refused"),
            "4.2",
        ),
        id="4.2",
    ),
    pytest.param(
        lambda: _tcp_failure(
            "connection_refused",
            control(tcp={f"{IP}:80": None}),
            ("tcp_ip", False, "connection_refused"),
            "4.3",
        ),
        id="4.3",
    ),
    pytest.param(
        lambda: _tcp_failure(
            "connection_refused",
            control(addrs=(IP_OTHER,), tcp={f"{IP}:80": "connection_refused"}),
            ("dns", False, "connection_refused"),
            "4.2",
        ),
        id="4.2-DOWN-becomes-dns-when-inconsistent",
    ),
    pytest.param(
        lambda: _dns_failure("dns_nxdomain_error", None, (False, True, "dns_nxdomain_error"), "5.1a"),
        id="5.1a",
    ),
    pytest.param(_case_5_1b_after_redirect, id="5.1b-after-redirect"),
    pytest.param(
        lambda: _dns_failure(
            "dns_nxdomain_error",
            control(dns_failure="dns_name_error"),
            (False, False, "dns_nxdomain_error"),
            "5.2",
        ),
        id="5.2",
    ),
    pytest.param(
        lambda: _dns_failure("dns_no_answer", control(addrs=()), (False, False, None), "5.3"), id="5.3"
    ),
    pytest.param(
        lambda: _dns_failure("dns_nxdomain_error", control(), ("dns", False, "dns_nxdomain_error"), "5.4"),
        id="5.4",
    ),
    pytest.param(
        lambda: Case(keys(query("127.0.0.1")), control(), HTTP_URL, ("dns", False, None), "6"),
        id="6-loopback-only",
    ),
    pytest.param(
        lambda: Case(
            keys(query("127.0.0.1")), control(addrs=("127.0.0.1",)), HTTP_URL, (False, False, None), "7"
        ),
        id="7-both-loopback",
    ),
    pytest.param(
        lambda: Case(
            keys(query(IP), connect(IP, 80)),
            control(tcp={f"{IP}:80": None}),
            HTTP_URL,
            (None, None, None),
            "none",
        ),
        id="nothing-matched",
    ),
    pytest.param(lambda: Case(keys(), None, HTTP_URL, (None, None, None), "none"), id="nothing-measured"),
    pytest.param(_case_ipv6_sibling_fails, id="working-endpoint-wins-over-failed-ipv6-sibling"),
]


@pytest.mark.parametrize("make", CASES)
def test_decision_table_row(make: object) -> None:
    case: Case = make()  # type: ignore[operator]
    verdict = run(case.keys, case.control, case.url)
    assert (verdict.blocking, verdict.accessible, verdict.http_experiment_failure) == case.expected
    assert explain(case.keys, case.control, case.url).decision.rule == case.rule


def test_non_classic_steps_do_not_decide() -> None:
    """A page fetched through an address only 8.8.8.8 gave is invisible to the classic analysis."""
    c = connect(IP, 80, classic=False)
    measured = keys(
        query(failure="dns_nxdomain_error"), query(IP, engine="udp", classic=False), c, fetch(HTTP_URL, c)
    )
    verdict = run(measured, control(tcp={f"{IP}:80": None}))
    assert (verdict.blocking, verdict.accessible, verdict.http_experiment_failure) == (
        "dns",
        False,
        "dns_nxdomain_error",
    )


def test_deepest_hop_decides_before_the_first() -> None:
    """The final page after a redirect outranks a failed sibling endpoint of the first hop."""
    v4, v6 = connect(IP, 80), connect(IPV6, 80, "connection_refused")
    moved = fetch(HTTP_URL, v4, response(302, b"", (("Location", f"http://{WWW}/"),)))
    later = connect(IP_SAME_AS, 80, depth=1)
    measured = keys(
        query(IP, IPV6),
        v4,
        v6,
        moved,
        query(IP_SAME_AS, hostname=WWW, depth=1),
        later,
        fetch(f"http://{WWW}/", later),
    )
    ctrl = control(addrs=(IP, IPV6), tcp={f"{IP}:80": None, f"[{IPV6}]:80": None})
    evaluation = explain(measured, ctrl)
    assert evaluation.decision.rule == "1.3"
    assert evaluation.decision.entry is not None and evaluation.decision.entry.depth == 1
    verdict = run(measured, ctrl)
    assert (verdict.blocking, verdict.accessible, verdict.http_experiment_failure) == (False, True, None)
