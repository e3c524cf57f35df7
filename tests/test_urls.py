"""The one rule for URLs, host names and endpoints (probe.steps.urls), as exact tables.

Every step uses it: a host is valid, and encoded the same way, whether it reaches the DNS step
(:func:`encode_hostname`) or comes in a URL (:func:`split_url`: the HTTP step, redirects,
settings, the control); the DNS step accepted ``-`` at either end of a label while the HTTP
step refused it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import pytest

from probe.errors import TargetError
from probe.helper.wire import WireError
from probe.helper.wire import parse_endpoint as wire_endpoint
from probe.steps import dns, http
from probe.steps.urls import (
    BAD_PORT,
    EXPECTED_BRACKETS,
    NEEDS_BRACKETS,
    NOT_AN_ENDPOINT,
    EndpointError,
    authority,
    encode_hostname,
    endpoint,
    parse_endpoint,
    split_url,
)


class Invalid(NamedTuple):
    reason: str


NUMERIC = "a numeric last label makes an IPv4 address, and this is none"
HOSTS: list[tuple[str, str | Invalid]] = [
    ("example.com", "example.com"),
    ("EXAMPLE.com", "example.com"),
    ("яндекс.рф", "xn--d1acpjx3f.xn--p1ai"),
    ("ЯНДЕКС。РФ", "xn--d1acpjx3f.xn--p1ai"),  # upper case and an ideographic full stop
    ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\u3002com", "example.com"),  # full width (UTS 46)
    ("xn--d1acpjx3f.xn--p1ai", "xn--d1acpjx3f.xn--p1ai"),
    ("münchen.de", "xn--mnchen-3ya.de"),
    ("faß.de", "xn--fa-hia.de"),  # IDNA 2008, not the transitional ss mapping
    ("bücher.example", "xn--bcher-kva.example"),
    ("rr3---sn-4g5e6nsz.googlevideo.com", "rr3---sn-4g5e6nsz.googlevideo.com"),
    ("-bad.example", "-bad.example"),  # browsers accept it; http.py refused, dns.py accepted
    ("name-.tumblr.com", "name-.tumblr.com"),
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("foo_bar.example.com", "foo_bar.example.com"),
    ("a_b.bücher.de", "a_b.xn--bcher-kva.de"),  # an ASCII label beside an IDNA one: same rule
    ("-x.bücher.de", "-x.xn--bcher-kva.de"),
    ("localhost", "localhost"),
    ("a" * 63 + ".com", "a" * 63 + ".com"),
    ("192.0.2.1", "192.0.2.1"),
    ("192.0.2.999", Invalid(NUMERIC)),  # a numeric last label: an IPv4 address or nothing
    ("example.123", Invalid(NUMERIC)),
    ("a..b", Invalid("empty label")),
    (".example.com", Invalid("empty label")),
    ("a" * 64 + ".com", Invalid("label longer than 63 bytes")),
    (".".join(["a" * 63] * 4), Invalid("longer than 253 bytes")),
    ("exa mple.com", Invalid("bad character in 'exa mple'")),
    ("a*b.example", Invalid("bad character in 'a*b'")),
    ("☃-⌘.com", Invalid("Codepoint U+2603 at position 1 of '☃-⌘' not allowed")),
]


@pytest.mark.parametrize(("host", "expected"), HOSTS)
def test_one_host_rule_for_names_and_urls(host: str, expected: str | Invalid) -> None:
    url = f"http://{host}/"
    if isinstance(expected, Invalid):
        with pytest.raises(TargetError) as as_name:
            encode_hostname(host)
        assert str(as_name.value) == f"invalid host name {host!r}: {expected.reason}"
        with pytest.raises(TargetError) as in_url:
            split_url(url)
        assert str(in_url.value) == f"invalid host name {host.lower()!r} in URL {url!r}: {expected.reason}"
    else:
        assert encode_hostname(host) == expected
        assert split_url(url) == ("http", expected, 80)
        assert http.validate_redirect(url) is None  # a Location with it is a hop to measure


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("example.com.", "example.com"),  # the DNS name has no final dot
        ("127.0.0.1", "127.0.0.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "::ffff:c000:201"),
    ],
)
def test_names_and_addresses(name: str, encoded: str) -> None:
    assert encode_hostname(name) == encoded


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty label"),
        (".", "empty label"),
        ("example.com/path", "bad character in 'com/path'"),
        ("user@example.com", "bad character in 'user@example'"),
        ("a:b", "bad character in 'a:b'"),
    ],
)
def test_names_a_url_cannot_hold(name: str, reason: str) -> None:
    with pytest.raises(TargetError) as caught:
        encode_hostname(name)
    assert str(caught.value) == f"invalid host name {name!r}: {reason}"


def test_invalid_idna_says_why() -> None:
    # The reason is the idna library's own sentence, which may be reworded between versions.
    with pytest.raises(TargetError, match=re.escape("invalid host name 'a\\u200db.com': ")):
        encode_hostname("a\u200db.com")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com", ("http", "example.com", 80)),
        ("HTTPS://WWW.Example.COM:8443/a?b#c", ("https", "www.example.com", 8443)),
        ("http://example.com:/", ("http", "example.com", 80)),
        ("http://user:pw@example.com/", ("http", "example.com", 80)),
        ("http://example.com./", ("http", "example.com.", 80)),  # a URL's host keeps its dot
        ("http://192.0.2.1:8080/", ("http", "192.0.2.1", 8080)),
        ("http://[2001:DB8:0::1]/", ("http", "2001:db8::1", 80)),
        ("https://bücher.example/", ("https", "xn--bcher-kva.example", 443)),
    ],
)
def test_split_url(url: str, expected: tuple[str, str, int]) -> None:
    assert split_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "unsupported URL scheme 'ftp' in 'ftp://example.com/': only http and https"),
        ("example.com", "unsupported URL scheme '' in 'example.com': only http and https"),
        ("http://", "no host name in URL 'http://'"),
        ("http:///path", "no host name in URL 'http:///path'"),
        ("https://:443/", "no host name in URL 'https://:443/'"),
        ("http://example.com:99999/", "invalid URL 'http://example.com:99999/': Port out of range 0-65535"),
        ("http://example.com:0/", "invalid port 0 in URL 'http://example.com:0/'"),
        ("http://[::1/", "invalid URL 'http://[::1/': Invalid IPv6 URL"),
        (
            "http://a\x00b.example/",
            "invalid URL 'http://a\\x00b.example/': too long or with control characters",
        ),
    ],
)
def test_split_url_rejects(url: str, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        split_url(url)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("host", "port", "default", "expected"),
    [
        ("192.0.2.1", 443, None, "192.0.2.1:443"),
        ("2001:db8::1", 443, None, "[2001:db8::1]:443"),
        ("example.com", 443, 443, "example.com"),
        ("example.com", 8443, 443, "example.com:8443"),
        ("2001:db8::1", 80, 80, "[2001:db8::1]"),
        ("2001:db8::1", 8080, 80, "[2001:db8::1]:8080"),
    ],
)
def test_authority_and_endpoint(host: str, port: int, default: int | None, expected: str) -> None:
    assert authority(host, port, default_port=default) == expected
    if default is None:
        assert endpoint(host, port) == expected


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("1.2.3.4:80", None, ("1.2.3.4", 80)),
        ("[2001:DB8::1]:443", None, ("2001:db8::1", 443)),
        ("1.2.3.4", 53, ("1.2.3.4", 53)),
        ("::1", 53, ("::1", 53)),
        ("[::1]", 53, ("::1", 53)),
        ("[::1]:5353", 53, ("::1", 5353)),
        ("2001:db8::1:80", None, EndpointError(NEEDS_BRACKETS)),
        ("1.2.3.4:80:90", None, EndpointError(NEEDS_BRACKETS)),
        ("[::1", 53, EndpointError(EXPECTED_BRACKETS)),
        ("[::1]53", None, EndpointError(EXPECTED_BRACKETS)),
        ("x.com:80", None, EndpointError(NOT_AN_ENDPOINT)),
        ("1.2.3.4", None, EndpointError(NOT_AN_ENDPOINT)),  # the port is needed
        ("[::1]", None, EndpointError(NOT_AN_ENDPOINT)),
        ("dns.google", 53, EndpointError(NOT_AN_ENDPOINT)),
        ("1.2.3.4:0", None, EndpointError(BAD_PORT)),
        ("1.2.3.4:65536", None, EndpointError(BAD_PORT)),
        ("1.2.3.4:", None, EndpointError(BAD_PORT)),
        ("1.2.3.4:\uff18\uff10", None, EndpointError(BAD_PORT)),  # full-width digits
    ],
)
def test_parse_endpoint(text: str, default: int | None, expected: tuple[str, int] | EndpointError) -> None:
    if isinstance(expected, EndpointError):
        with pytest.raises(EndpointError) as caught:
            parse_endpoint(text, default_port=default)
        assert caught.value.reason == expected.reason
    else:
        assert parse_endpoint(text, default_port=default) == expected
        assert parse_endpoint(endpoint(*expected)) == expected  # what endpoint writes reads back


def test_the_helper_and_the_resolvers_read_endpoints_alike() -> None:
    """The control's wire format and ``--resolver`` read endpoints with the same rule."""
    assert wire_endpoint("[2001:DB8::1]:443") == ("2001:db8::1", 443, "[2001:db8::1]:443")
    with pytest.raises(WireError, match=rf"^tcp_connect: '1\.2\.3\.4:0': {BAD_PORT}$"):
        wire_endpoint("1.2.3.4:0")
    assert dns.parse_resolver("[2001:DB8::1]:5353").address == "[2001:db8::1]:5353"
    assert dns.parse_resolver("2001:DB8::1").address == "[2001:db8::1]:53"
