"""The HTTP diff of the final response against the control's (reference §1.4).

OONI's ``minipipeline/httpdiff.go`` and ``analysis.go``, computed only when there is a final
response (2xx/4xx/5xx) and the control fetched the page without failure:

- ``body_proportion`` = min/max of the two body lengths, when the probe's body is non-empty and
  not truncated and the control's length is positive; otherwise 0 and ``body_length_match``
  is ``None``. ``body_length_match`` = proportion > 0.7 (strictly);
- ``status_code_match`` = codes equal, but ``None`` when they differ and the control's code is
  not 2xx (so 404 == 404 is a match); ``None`` unless both codes are positive;
- ``headers_match`` = the two sets of header *names*, lower-cased, minus :data:`COMMON_HEADERS`,
  intersect; computed even when one side has no headers (then False);
- ``title_match`` = no word of 5+ bytes (UTF-8, lower-cased, split on single spaces) is in one
  title but not the other; two empty titles match.

:func:`is_diff` is OONI's decision: no diff only when the status codes match and one of body
length, headers or title matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from probe.model import ControlResponse, HTTPResponse

BODY_PROPORTION_FACTOR: Final = 0.7
MIN_TITLE_WORD_BYTES: Final = 5
COMMON_HEADERS: Final = frozenset(
    {
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
)
"""Header names every site sends, so they say nothing (``content-length`` is *not* one)."""


@dataclass(frozen=True, slots=True)
class HTTPDiff:
    """The five diff keys, as they go into the test keys."""

    body_proportion: float = 0.0
    body_length_match: bool | None = None
    status_code_match: bool | None = None
    headers_match: bool | None = None
    title_match: bool | None = None


def http_diff(response: HTTPResponse | None, control: ControlResponse | None) -> HTTPDiff:
    """Compare the probe's final *response* with the control's fetch.

    Returns:
        All keys ``None`` (and proportion 0) without a final response, without a control, or
        when the control's fetch failed.
    """
    if response is None or control is None or control.http_request.failure is not None:
        return HTTPDiff()
    th = control.http_request
    proportion = body_proportion(response, th.body_length)
    body = HTTPDiff(
        body_proportion=proportion or 0.0,
        body_length_match=None if proportion is None else proportion > BODY_PROPORTION_FACTOR,
    )
    if th.status_code <= 0:
        # OONI compares headers and titles only with a real control status code.
        return body
    return HTTPDiff(
        body_proportion=body.body_proportion,
        body_length_match=body.body_length_match,
        status_code_match=status_code_match(response.code, th.status_code),
        headers_match=headers_match((name for name, _ in response.headers_list), th.headers),
        title_match=title_match(response.title, th.title),
    )


def body_proportion(response: HTTPResponse, control_length: int) -> float | None:
    """min/max of the body lengths; ``None`` when either is unusable (empty, truncated, -1)."""
    measured = response.body_length
    if measured <= 0 or response.body_is_truncated or control_length <= 0:
        return None
    return min(measured, control_length) / max(measured, control_length)


def status_code_match(measured: int, control: int) -> bool | None:
    """Equal codes; ``None`` when they differ and the control's is not 2xx, or one is unset."""
    if measured <= 0 or control <= 0:
        return None
    if measured != control and control // 100 != 2:
        return None
    return measured == control


def headers_match(measured: Iterable[str], control: Iterable[str]) -> bool:
    """True when both responses carry an uncommon header name (values are ignored)."""
    ours = {name.lower() for name in measured} - COMMON_HEADERS
    theirs = {name.lower() for name in control} - COMMON_HEADERS
    return bool(ours & theirs)


def title_match(measured: str, control: str) -> bool:
    """True when every long word is in both titles (two empty titles match)."""
    return not (_long_words(measured) ^ _long_words(control))


def is_diff(diff: HTTPDiff) -> bool:
    """OONI's HTTP-diff algorithm: True unless status matches and body/headers/title match."""
    if diff.status_code_match is True:
        return not (diff.body_length_match is True or diff.headers_match is True or diff.title_match is True)
    return True


def _long_words(title: str) -> set[str]:
    # Go's len() counts bytes, so "émoji" is a 6-byte word there and here.
    return {word.lower() for word in title.split(" ") if len(word.encode("utf-8")) >= MIN_TITLE_WORD_BYTES}
