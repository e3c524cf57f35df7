"""The HTTP-diff keys and algorithm (reference §1.4), with OONI's exact common-header list."""

from __future__ import annotations

import pytest

from probe.analysis.httpdiff import (
    COMMON_HEADERS,
    HTTPDiff,
    body_proportion,
    headers_match,
    http_diff,
    is_diff,
    status_code_match,
    title_match,
)
from tests.analysis.builders import HTTP_URL, IP, connect, control, fetch, keys, query, response, run

OONI_COMMON_HEADERS = {
    "date",
    "content-type",
    "server",
    "cache-control",
    "vary",
    "set-cookie",
    "location",
    "expires",
    "x-powered-by",
    "content-encoding",
    "last-modified",
    "accept-ranges",
    "pragma",
    "x-frame-options",
    "etag",
    "x-content-type-options",
    "age",
    "via",
    "p3p",
    "x-xss-protection",
    "content-language",
    "cf-ray",
    "strict-transport-security",
    "link",
    "x-varnish",
}


def test_common_headers_are_exactly_oonis() -> None:
    assert COMMON_HEADERS == OONI_COMMON_HEADERS
    assert "content-length" not in COMMON_HEADERS
    assert "alt-svc" not in COMMON_HEADERS


@pytest.mark.parametrize(
    ("probe_len", "control_len", "truncated", "proportion"),
    [
        (100, 100, False, 1.0),
        (70, 100, False, 0.7),
        (100, 70, False, 0.7),
        (71, 100, False, 0.71),
        (0, 100, False, None),
        (100, 0, False, None),
        (100, -1, False, None),
        (100, 100, True, None),
    ],
)
def test_body_proportion(probe_len: int, control_len: int, truncated: bool, proportion: float | None) -> None:
    measured = response(body=b"x" * probe_len, truncated=truncated)
    assert body_proportion(measured, control_len) == proportion


@pytest.mark.parametrize(
    ("probe_len", "control_len", "truncated", "expected"),
    [
        (70, 100, False, (0.7, False)),  # 0.7 is not > 0.7
        (71, 100, False, (0.71, True)),
        (100, 100, True, (0.0, None)),  # a truncated probe body is not compared
        (0, 100, False, (0.0, None)),
    ],
)
def test_body_length_match_is_strictly_above_seven_tenths(
    probe_len: int, control_len: int, truncated: bool, expected: tuple[float, bool | None]
) -> None:
    measured = response(body=b"x" * probe_len, truncated=truncated)
    diff = http_diff(measured, control(body=b"y" * control_len))
    assert (diff.body_proportion, diff.body_length_match) == expected


@pytest.mark.parametrize(
    ("probe", "helper", "expected"),
    [
        (200, 200, True),
        (404, 404, True),  # equal non-2xx codes match (ooni/probe#2287)
        (500, 500, True),
        (404, 200, False),
        (302, 200, False),
        (200, 404, None),  # differ and the control is not 2xx: no opinion
        (200, 503, None),
        (200, -1, None),
        (0, 200, None),
    ],
)
def test_status_code_match(probe: int, helper: int, expected: bool | None) -> None:
    assert status_code_match(probe, helper) is expected


def test_headers_match_ignores_every_common_header() -> None:
    common = sorted(OONI_COMMON_HEADERS)
    assert headers_match(common, common) is False


@pytest.mark.parametrize(
    ("probe", "helper", "expected"),
    [
        (["Content-Length"], ["content-length"], True),  # content-length is uncommon; case ignored
        (["alt-svc", "Date"], ["Alt-Svc", "Server"], True),
        (["X-Cache", "Date"], ["X-Served-By", "Date"], False),
        ([], ["X-Cache"], False),  # computed even when one side has no headers
        ([], [], False),
    ],
)
def test_headers_match_on_uncommon_names(probe: list[str], helper: list[str], expected: bool) -> None:
    assert headers_match(probe, helper) is expected


@pytest.mark.parametrize(
    ("probe", "helper", "expected"),
    [
        ("Example Domain", "Example Domain", True),
        ("EXAMPLE Domain", "example domain", True),
        ("", "", True),  # two empty titles match
        ("The Dog", "A Cat", True),  # no word of 5+ characters: nothing differs
        ("Example Domain", "Example Page", False),  # every long word must be in both
        ("Surf Safely", "Example Domain", False),
        ("Example", "", False),
        ("café", "", False),  # 5 bytes in UTF-8: a long word, as OONI's Go len() counts
        ("News Today", "Today News", True),  # order does not matter
    ],
)
def test_title_match(probe: str, helper: str, expected: bool) -> None:
    assert title_match(probe, helper) is expected


@pytest.mark.parametrize(
    ("diff", "expected"),
    [
        (HTTPDiff(status_code_match=True, body_length_match=True), False),
        (HTTPDiff(status_code_match=True, headers_match=True, body_length_match=False), False),
        (HTTPDiff(status_code_match=True, title_match=True, headers_match=False), False),
        (
            HTTPDiff(status_code_match=True, body_length_match=False, headers_match=False, title_match=False),
            True,
        ),
        (HTTPDiff(status_code_match=True), True),
        (
            HTTPDiff(status_code_match=False, body_length_match=True, headers_match=True, title_match=True),
            True,
        ),
        (
            HTTPDiff(status_code_match=None, body_length_match=True, headers_match=True, title_match=True),
            True,
        ),
    ],
)
def test_http_diff_algorithm(diff: HTTPDiff, expected: bool) -> None:
    assert is_diff(diff) is expected


def test_no_diff_keys_without_control_or_when_its_fetch_failed() -> None:
    assert http_diff(response(), None) == HTTPDiff()
    assert http_diff(response(), control(http_failure="connection_reset")) == HTTPDiff()
    assert http_diff(None, control()) == HTTPDiff()


def test_keys_in_the_measurement() -> None:
    page = b"<html><head><title>Example Domain</title></head><body>" + b"z" * 900 + b"</body></html>"
    c = connect(IP, 80)
    measured = keys(query(IP), c, fetch(HTTP_URL, c, response(200, page, (("Content-Length", "1"),))))
    verdict = run(measured, control(tcp={f"{IP}:80": None}, headers=(("content-length", "2"), ("Date", "x"))))
    assert verdict.status_code_match is True
    assert verdict.body_length_match is True
    assert verdict.body_proportion == pytest.approx(len(page) / (len(page) + 300))
    assert verdict.headers_match is True
    assert verdict.title_match is True
    assert (verdict.blocking, verdict.accessible) == (False, True)


def test_keys_stay_null_without_a_final_response() -> None:
    c = connect(IP, 80)
    verdict = run(keys(query(IP), c, fetch(HTTP_URL, c, failure="connection_reset")), control())
    assert (verdict.body_proportion, verdict.body_length_match, verdict.status_code_match) == (
        0.0,
        None,
        None,
    )
    assert (verdict.headers_match, verdict.title_match) == (None, None)
