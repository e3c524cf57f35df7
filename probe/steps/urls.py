"""URLs, host names and endpoints: the one place their rules live.

- :func:`split_url` checks a URL the steps can measure and gives its scheme, host and port;
- :func:`encode_hostname` gives a host name as it goes on the wire (IDNA, lower case);
- :func:`endpoint` writes ``ip:port`` (``[v6]:port``) as OONI records endpoints,
  :func:`authority` a URL's ``host[:port]`` (the ``Host`` header), and :func:`parse_endpoint`
  reads an endpoint back.

One host rule for every step (the DNS step, the HTTP step, the control and the settings), as
a browser applies it (WHATWG URL, UTS #46 with ``CheckHyphens`` and ``UseSTD3ASCIIRules``
off): labels of letters, digits, ``-`` and ``_``, ``-`` anywhere in a label (real host names
such as ``rr3---sn-abc.googlevideo.com`` or ``name-.tumblr.com`` have them, and IDNA 2008's
hyphen rules would reject them); non-ASCII labels IDNA-encoded (UTS #46 mapping, then IDNA
2008); each label 1-63 bytes, the name at most 253; a name whose last label is a number is an
IPv4 address and must be a valid one (``192.0.2.999`` is no host). IP literals are returned in
their canonical form.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from typing import Final
from urllib.parse import SplitResult, urlsplit

import idna

from probe.errors import TargetError

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
MAX_URL_LENGTH: Final = 65536
"""httpx's limit."""
NEEDS_BRACKETS: Final = "an IPv6 endpoint needs brackets"
EXPECTED_BRACKETS: Final = "expected [IPv6]:port"
NOT_AN_ENDPOINT: Final = "not an IP address and port"
BAD_PORT: Final = "port must be 1-65535"
_LABEL: Final = re.compile(r"[a-z0-9_-]+")


class EndpointError(ValueError):
    """Text that is not an endpoint; ``reason`` is one of the constants above."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _InvalidHost(ValueError):
    """Why a host name is invalid (the caller says which name, and where it came from)."""


def split_url(url: str) -> tuple[str, str, int]:
    """Split *url* into what the measurement steps need.

    Returns:
        ``(scheme, host, port)``: scheme ``http`` or ``https``; the host IDNA-encoded
        (UTS #46) and lower case, a final dot kept, IPv6 without brackets; the port,
        defaulting to 80/443.

    Raises:
        TargetError: the URL is malformed, its scheme is not http/https, it has no host,
            the host is not a valid name or address, or the port is invalid.
    """
    return split_url_parts(url)[:3]


SPLIT_CACHE_SIZE: Final = 1024
"""URLs whose split is kept: a measurement splits its URL in several steps (the measurement,
each hop, the HTTP step, the analysis), and a round has up to a few hundred in progress."""
SPLIT_CACHE_MAX_LENGTH: Final = 2048
"""Longer URLs (a hostile redirect's, up to :data:`MAX_URL_LENGTH`) are split each time, so
the cache holds at most ~2 MB."""


def split_url_parts(url: str) -> tuple[str, str, int, SplitResult]:
    """:func:`split_url`, and the parts of the URL as :func:`urllib.parse.urlsplit` gives them.

    The URL is parsed once: the last :data:`SPLIT_CACHE_SIZE` splits are kept (the result is
    immutable), so every step of a measurement asking again costs a lookup.

    Raises:
        TargetError: as :func:`split_url` (a URL that raises is not kept).
    """
    if len(url) <= SPLIT_CACHE_MAX_LENGTH:
        return _split_kept(url)
    return _split(url)


def forget_splits() -> None:
    """Drop the kept splits (a round's end: an idle daemon holds none of its URLs)."""
    _split_kept.cache_clear()


@functools.lru_cache(maxsize=SPLIT_CACHE_SIZE)
def _split_kept(url: str) -> tuple[str, str, int, SplitResult]:
    return _split(url)


def _split(url: str) -> tuple[str, str, int, SplitResult]:
    if len(url) > MAX_URL_LENGTH or any(c.isascii() and not c.isprintable() for c in url):
        raise TargetError(f"invalid URL {url[:100]!r}: too long or with control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise TargetError(f"unsupported URL scheme {parts.scheme!r} in {url!r}: only http and https")
    if not parts.hostname:
        raise TargetError(f"no host name in URL {url!r}")
    if port == 0:
        raise TargetError(f"invalid port 0 in URL {url!r}")
    hostname = parts.hostname
    if ":" in hostname:  # urlsplit accepted it in brackets; it must be an IPv6 address
        try:
            host = str(ipaddress.IPv6Address(hostname))
        except ValueError:
            raise TargetError(f"invalid IPv6 address {hostname!r} in URL {url!r}") from None
    else:
        try:
            host = _encode(hostname, keep_final_dot=True)
        except _InvalidHost as exc:
            raise TargetError(f"invalid host name {hostname!r} in URL {url!r}: {exc}") from None
    return parts.scheme, host, port or DEFAULT_PORTS[parts.scheme], parts


def encode_hostname(name: str) -> str:
    """The name as it goes on the wire: IDNA (UTS #46), lower case, no final dot.

    See the module docstring for the rule. An IP literal is returned in its canonical form.

    Raises:
        TargetError: an empty label, a label over 63 or a name over 253 bytes, a character
            no host name can hold, an invalid IDNA label, or a numeric last label that does
            not make an IPv4 address.
    """
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(name))
    try:
        return _encode(name, keep_final_dot=False)
    except _InvalidHost as exc:
        raise TargetError(f"invalid host name {name!r}: {exc}") from None


def _encode(name: str, *, keep_final_dot: bool) -> str:
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
        final_dot = mapped.endswith(".") and mapped != "."
        mapped = mapped[:-1] if final_dot else mapped
        labels = [label if label.isascii() else idna.alabel(label).decode() for label in mapped.split(".")]
    except idna.IDNAError as exc:
        raise _InvalidHost(str(exc)) from None
    for label in labels:
        if not label:
            raise _InvalidHost("empty label")
        if len(label) > 63:
            raise _InvalidHost("label longer than 63 bytes")
        if not _LABEL.fullmatch(label):
            raise _InvalidHost(f"bad character in {label!r}")
    encoded = ".".join(labels)
    if len(encoded) > 253:
        raise _InvalidHost("longer than 253 bytes")
    if labels[-1].isdigit():
        # A numeric last label makes it an IPv4 address (WHATWG, httpx): it must be one.
        try:
            return str(ipaddress.IPv4Address(encoded))
        except ValueError:
            raise _InvalidHost("a numeric last label makes an IPv4 address, and this is none") from None
    return encoded + "." if final_dot and keep_final_dot else encoded


def authority(host: str, port: int, *, default_port: int | None = None) -> str:
    """``host:port`` with an IPv6 address in brackets; the port left out when it is *default_port*."""
    bracketed = f"[{host}]" if ":" in host else host
    return bracketed if port == default_port else f"{bracketed}:{port}"


def endpoint(ip: str, port: int) -> str:
    """``ip:port`` with IPv6 addresses in brackets, as OONI writes endpoints."""
    return authority(ip, port)


def parse_endpoint(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """Read ``ip:port`` or ``[v6]:port`` back; with *default_port*, ``ip``, ``v6`` and ``[v6]`` too.

    Returns:
        The address in canonical form and the port.

    Raises:
        EndpointError: with ``reason`` :data:`NEEDS_BRACKETS`, :data:`EXPECTED_BRACKETS`,
            :data:`NOT_AN_ENDPOINT` (no IP address, or no port where one is needed) or
            :data:`BAD_PORT`.
    """
    port_text: str | None
    if text.startswith("["):
        host, closed, tail = text[1:].partition("]")
        if not closed or (tail and not tail.startswith(":")):
            raise EndpointError(EXPECTED_BRACKETS)
        port_text = tail[1:] if tail else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text and default_port is None:
        raise EndpointError(NEEDS_BRACKETS)
    else:
        host, port_text = text, None  # an address alone (a bare IPv6 one with a default port)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise EndpointError(NOT_AN_ENDPOINT) from None
    if port_text is None:
        if default_port is None:
            raise EndpointError(NOT_AN_ENDPOINT)
        return str(ip), default_port
    if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise EndpointError(BAD_PORT)
    return str(ip), int(port_text)
