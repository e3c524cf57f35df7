"""The volunteer's own addresses: which they are, and their removal from a measurement.

A page may echo the address it sees (in its body, ``<title>``, a header, a cookie, a redirect
URL), and an error may name the local end of a connection. None of that may reach the store,
an export or ``probe measure --json``. :func:`scrub` is the one place that removes them, as
OONI's ``ScrubMeasurement`` does: every occurrence of each of the volunteer's addresses, in
every string and byte field of the measurement, becomes ``[scrubbed]``. Unlike a plain string
replacement it finds each address in any textual form — IPv4 dotted (leading zeros too) or
dashed (``10-250-0-2``, as reverse-DNS names spell it), IPv6 compressed, expanded, upper case
or with ``%3A`` for ``:``, and IPv6 forms that carry the IPv4 address (``::ffff:a.b.c.d``,
NAT64 ``64:ff9b::/96``, 6to4, Teredo) — and only whole addresses: scrubbing ``10.0.0.1``
leaves ``10.0.0.12`` alone. Every other address, the site's included, is evidence and stays.

:func:`volunteer_addresses` gathers what to scrub: the address the control saw (``whoami``,
for a volunteer behind NAT the only one the world sees), every address of this machine's
interfaces, and the source address the kernel picks toward the resolvers, the control and
the default routes (a UDP ``connect`` sends nothing). Loopback is never among them: it is
everyone's, ``probe_ip`` is OONI's 127.0.0.1 marker, and a censor's 127.0.0.1 answer is data.
These addresses live in memory only: never logged, never stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

from probe.model import Measurement

SCRUBBED: Final = "[scrubbed]"
"""OONI's marker for a removed address."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_ROUTES: Final = ("192.0.2.1", "2001:db8::1")
"""Documentation addresses: a UDP ``connect`` to them tells the default routes' source addresses."""
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_COMPAT: Final = ipaddress.IPv6Network("::/96")

# Candidate tokens; each is parsed and compared, so only a whole, equal address is replaced.
# Bodies are large (512 KiB) and hostile: every pattern runs in linear time, and IPv6 runs are
# only those with a colon (or a ``%``: ``%3A``), so that English words made of a-f (``face``)
# cost no Python call. Dotted and dashed IPv4 start without a look-behind, which lets the
# regex engine skip to digits quickly: their boundaries are checked after.
_IPV6_RUN: Final = r"(?<![0-9A-Fa-f%.])[0-9A-Fa-f.]*+[:%][0-9A-Fa-f:%.]*"
"""A run of the characters of IPv6 text (``%3A`` for ``:``; ``%`` before a zone), with a colon."""
_IPV4_DOTTED: Final = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
_IPV4_DASHED: Final = r"[0-9]{1,3}-[0-9]{1,3}-[0-9]{1,3}-[0-9]{1,3}"
_PATTERNS: Final = ((_IPV6_RUN, "ipv6"), (_IPV4_DOTTED, "."), (_IPV4_DASHED, "-"))
_STR_PATTERNS: Final = tuple((re.compile(p), kind) for p, kind in _PATTERNS)
_BYTES_PATTERNS: Final = tuple((re.compile(p.encode("ascii")), kind) for p, kind in _PATTERNS)
_PERCENT_COLON: Final = re.compile("%3[Aa]")
_LONGEST_IPV6_TEXT: Final = 8 * 4 + 7 * 3 + 12
"""Eight groups with ``%3A`` between them, or an IPv4 tail: no IPv6 text is longer."""

T = TypeVar("T")


def scrub(measurement: Measurement, addresses: Iterable[str | Address]) -> Measurement:
    """*measurement* with every occurrence of *addresses* replaced by ``[scrubbed]``.

    Every ``str`` and ``bytes`` in the tree is scrubbed: bodies, titles, header names and
    values, the URLs of every hop, DNS answers, TLS fields, certificates, failure strings and
    mapping keys. Numbers are left as they are: ``body_length`` still says how many bytes were
    read, which is what the verdict (already computed) compared. Loopback and unspecified
    addresses in *addresses* are ignored (see the module's docstring). Pure: the measurement
    is returned unchanged (the same object) when nothing matched.
    """
    matcher = _Matcher(addresses)
    if not matcher:
        return measurement
    return _walk(measurement, matcher)


def scrub_text(text: str, addresses: Iterable[str | Address]) -> str:
    """*text* with every occurrence of *addresses*, in any textual form, made ``[scrubbed]``."""
    matcher = _Matcher(addresses)
    return matcher.in_text(text) if matcher else text


def scrub_bytes(data: bytes, addresses: Iterable[str | Address]) -> bytes:
    """The bytes version of :func:`scrub_text` (ASCII forms of the addresses)."""
    matcher = _Matcher(addresses)
    return matcher.in_bytes(data) if matcher else data


def volunteer_addresses(*, known: Iterable[str] = (), toward: Iterable[str] = ()) -> frozenset[Address]:
    """The addresses that identify this volunteer, for :func:`scrub`.

    Args:
        known: addresses learned elsewhere, e.g. the one the control's ``whoami`` saw.
        toward: where the measurement sends traffic (IP addresses, ``ip:port``, URLs): the
            source address the kernel picks toward each IP literal is added. Host names are
            skipped: resolving them would be traffic of its own.

    Returns:
        The non-loopback addresses among *known*, this machine's interface addresses and the
        source addresses toward *toward* and the default routes.
    """
    found: set[Address] = set(local_addresses())
    found.update(a for a in map(_parse_ip, known) if a is not None)
    destinations = [a for a in map(_literal_host, toward) if a is not None]
    for destination in dict.fromkeys([*destinations, *map(ipaddress.ip_address, _DEFAULT_ROUTES)]):
        source = source_address(destination)
        if source is not None:
            found.add(source)
    return frozenset(a for a in found if _identifying(a))


ADDRESSES_MAX_AGE: Final = 1.0
"""Seconds a :class:`RoundAddresses` keeps what it gathered before gathering it again."""


class RoundAddresses:
    """:func:`volunteer_addresses` for the measurements of one round, gathered once a second.

    Gathering reads ``/proc`` and asks the kernel for source addresses: done per measurement
    it was a tenth of a loopback round's time. A round shares one of these instead, built
    with the round's *known* and *toward* (the same for all its measurements). Addresses can
    change during a long round (a mobile link that reconnects gets a new one), so what was
    gathered is gathered again once it is *max_age* seconds old: the new address is scrubbed
    from the measurements that end a second later at the latest. In memory only.
    """

    def __init__(
        self,
        *,
        known: Iterable[str] = (),
        toward: Iterable[str] = (),
        max_age: float = ADDRESSES_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._known = tuple(known)
        self._toward = tuple(toward)
        self._max_age = max_age
        self._clock = clock
        self._found: frozenset[Address] | None = None
        self._at = 0.0

    def __repr__(self) -> str:  # never the addresses themselves (they must not reach a log)
        return f"{type(self).__name__}(max_age={self._max_age})"

    def get(self, extra: Iterable[str] = ()) -> frozenset[Address]:
        """The volunteer's addresses now, with the identifying ones among *extra* (a
        measurement's own ``whoami`` answer)."""
        now = self._clock()
        if self._found is None or now - self._at >= self._max_age:
            self._found = volunteer_addresses(known=self._known, toward=self._toward)
            self._at = now
        more = {a for a in map(_parse_ip, extra) if a is not None and _identifying(a)}
        return self._found | more if more else self._found


def local_addresses() -> frozenset[Address]:
    """Every address of this machine's interfaces, loopback excepted (Linux ``/proc``).

    IPv6 link-local addresses are kept: they often carry the interface's MAC address
    (EUI-64), which identifies the machine for longer than any IP address. Elsewhere than
    Linux this is empty, and :func:`source_address` finds the addresses in use.
    """
    found: set[Address] = set()
    with contextlib.suppress(OSError, ValueError):
        found.update(_fib_trie_locals(Path("/proc/net/fib_trie").read_text(encoding="ascii")))
    with contextlib.suppress(OSError, ValueError):
        found.update(_if_inet6(Path("/proc/net/if_inet6").read_text(encoding="ascii")))
    return frozenset(a for a in found if _identifying(a))


def source_address(destination: Address) -> Address | None:
    """The local address the kernel would send from to *destination*; ``None`` without a route.

    A UDP ``connect`` only picks the route and the source address: no packet is sent.
    """
    family = socket.AF_INET6 if destination.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((str(destination), 53))
            return _parse_ip(sock.getsockname()[0])
    except OSError:  # no route, no such family on this machine
        return None


def _fib_trie_locals(text: str) -> Iterable[Address]:
    """The local IPv4 addresses in ``/proc/net/fib_trie``: leaves followed by ``/32 host LOCAL``."""
    leaf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            leaf = stripped[4:]
        elif stripped.startswith("/32 host LOCAL") and leaf:
            yield ipaddress.IPv4Address(leaf)


def _if_inet6(text: str) -> Iterable[Address]:
    """The IPv6 addresses in ``/proc/net/if_inet6`` (32 hex digits first on each line)."""
    for line in text.splitlines():
        if line.strip():
            yield ipaddress.IPv6Address(int(line.split()[0], 16))


def _identifying(address: Address) -> bool:
    return not (address.is_loopback or address.is_unspecified or address.is_multicast)


def _parse_ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _literal_host(text: str) -> Address | None:
    """The IP address in an IP literal, ``ip:port``, ``[v6]:port`` or URL; else ``None``."""
    text = text.strip()
    if not text:
        return None
    if (direct := _parse_ip(text.strip("[]"))) is not None:
        return direct
    try:
        host = urlsplit(text if "://" in text else f"//{text}").hostname
    except ValueError:
        return None
    return _parse_ip(host) if host else None


class _Matcher:
    """Finds the textual forms of a set of addresses and replaces them."""

    def __init__(self, addresses: Iterable[str | Address]) -> None:
        parsed = [a if not isinstance(a, str) else _parse_ip(a) for a in addresses]
        # A dual-stack server sees an IPv4 client as ::ffff:a.b.c.d: scrub a.b.c.d as well.
        mapped = [a.ipv4_mapped for a in parsed if isinstance(a, ipaddress.IPv6Address)]
        self._addresses = frozenset(a for a in [*parsed, *mapped] if a is not None and _identifying(a))
        self._v4 = frozenset(a for a in self._addresses if a.version == 4)
        self._v4_ints = frozenset(int(a) for a in self._v4)
        self._cache: dict[str, bool] = {}
        self._runs: dict[str, str] = {}
        # What the text of one of ours (or of an IPv6 form of our IPv4) can end with: its low
        # 16 bits as the last hex group, its low 32 bits as a dotted tail. A hostile page full
        # of colon runs is then answered mostly without parsing (see _could_be_ours).
        low32 = {int(a) & 0xFFFFFFFF for a in self._addresses}
        self._low16 = frozenset(value & 0xFFFF for value in low32)
        self._low32 = frozenset(low32)

    def __bool__(self) -> bool:
        return bool(self._addresses)

    def in_text(self, text: str) -> str:
        new = text
        for pattern, kind in _STR_PATTERNS:
            if (":" in new or "%3" in new) if kind == "ipv6" else kind in new:
                new = pattern.sub(partial(self._replace_match, kind=kind), new)
        return text if new == text else new

    def in_bytes(self, data: bytes) -> bytes:
        new = data
        for pattern, kind in _BYTES_PATTERNS:
            if (b":" in new or b"%3" in new) if kind == "ipv6" else kind.encode("ascii") in new:
                new = pattern.sub(partial(self._replace_bytes_match, kind=kind), new)
        return data if new == data else new

    def _replace_match(self, match: re.Match[str], *, kind: str) -> str:
        if kind == "ipv6":
            return self._replace_ipv6(match.group(0))
        text, start, end = match.string, match.start(), match.end()
        return self._replace(match.group(0), kind, text[max(0, start - 2) : start], text[end : end + 2])

    def _replace_bytes_match(self, match: re.Match[bytes], *, kind: str) -> bytes:
        if kind == "ipv6":
            run = match.group(0)
            if run.count(b":") < 2 and b"%3" not in run:  # the common case, answered without decoding
                return run
            return self._replace_ipv6(run.decode()).encode()
        data, start, end = match.string, match.start(), match.end()
        before = data[max(0, start - 2) : start].decode("latin-1")
        after = data[end : end + 2].decode("latin-1")
        return self._replace(match.group(0).decode("ascii"), kind, before, after).encode("ascii")

    def _replace(self, token: str, kind: str, before: str, after: str) -> str:
        """*token* with the address in it that is ours made ``[scrubbed]``; else *token*.

        *before* and *after* are the (up to) two characters around the token.
        """

        # A dotted (dashed) address is whole only without a digit, or a separator and a digit,
        # on either side: 10.0.0.1 is not in 10.0.0.12, 110.0.0.1 or 1.10.0.0.1.
        def touches(side: str) -> bool:
            return side[-1:].isdigit() or (side[-1:] == kind and side[:1].isdigit())

        if touches(before) or after[:1].isdigit() or (after[:1] == kind and after[1:2].isdigit()):
            return token
        return SCRUBBED if self._is_ours(token, kind) else token

    def _replace_ipv6(self, run: str) -> str:
        """The run of IPv6 characters with our address, if it ends the run, scrubbed.

        The run may carry more than the address: a label glued before it (``ip:2001:db8::1``,
        ``de:`` from ``code:``), punctuation after it (``…::1: refused``, ``…::1.``), a zone
        (``fe80::1%eth0``, ``%25eth0`` in a URL). The address is what is left, so it ends
        where the run does, or before the zone: ``2001:db8::1`` is not in ``2001:db8::1:5``.
        """
        if run.count(":") < 2 and "%3" not in run:  # IPv6 text has two colons at least
            return run
        if run not in self._runs:
            self._runs[run] = self._scrub_run(run)
        return self._runs[run]

    def _scrub_run(self, run: str) -> str:
        ends = [len(run)]
        while ends[-1] > 0 and run[ends[-1] - 1] in ".:":
            ends.append(ends[-1] - 1)
        ends += [m.start() for m in re.finditer("%(?!3[Aa])", run)]
        for end in ends:
            core = run[:end]
            starts = [0, *(i + 1 for i, char in enumerate(core) if char == ":")]
            for start in starts:
                if end - start <= _LONGEST_IPV6_TEXT and self._is_ours(core[start:], "ipv6"):
                    return run[:start] + SCRUBBED + run[end:]
        return run

    def _is_ours(self, token: str, kind: str) -> bool:
        key = kind + token
        if key not in self._cache:
            self._cache[key] = self._lookup(token, kind)
        return self._cache[key]

    def _lookup(self, token: str, kind: str) -> bool:
        if kind != "ipv6":
            a, b, c, d = (int(octet) for octet in token.split(kind))  # decimal, leading zeros too
            return max(a, b, c, d) <= 255 and (a << 24 | b << 16 | c << 8 | d) in self._v4_ints
        token = _PERCENT_COLON.sub(":", token)
        if not self._could_be_ours(token):
            return False
        try:
            address = ipaddress.IPv6Address(token)
        except ValueError:
            return False
        if address in self._addresses:
            return True
        return bool(self._v4) and any(v4 in self._v4 for v4 in _embedded_ipv4(address))

    def _could_be_ours(self, token: str) -> bool:
        """A quick necessary test: the last group (or dotted tail) of *token* matches ours."""
        if self._v4 and token[:5].lower() in ("2002:", "2001:"):
            return True  # 6to4 and Teredo carry the IPv4 address in the middle
        tail = token.rpartition(":")[2]
        try:
            if "." in tail:
                octets = [int(o) for o in tail.split(".")]
                return (
                    len(octets) == 4
                    and sum(o << s for o, s in zip(octets, (24, 16, 8, 0), strict=True)) in self._low32
                )
            return int(tail or "0", 16) in self._low16
        except ValueError:
            return False


def _embedded_ipv4(address: ipaddress.IPv6Address) -> Iterable[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped, compatible, NAT64, 6to4, Teredo."""
    if address.ipv4_mapped is not None:
        yield address.ipv4_mapped
    if address in _COMPAT or address in _NAT64:
        yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield address.teredo[1]


_LEAVES: Final = frozenset({int, float, bool, datetime.datetime, type(None)})
"""Types with no text in them: a measurement has many (times, counts, flags), walked past."""
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""The field names of each dataclass met, looked up once per class."""


def _walk(value: T, matcher: _Matcher) -> T:
    """*value* with its strings and bytes scrubbed; the same object when nothing changed."""
    if type(value) in _LEAVES:
        return value
    new: Any = value
    if isinstance(value, str):
        new = matcher.in_text(value)
    elif isinstance(value, bytes):
        new = matcher.in_bytes(value)
    elif isinstance(value, tuple):
        items = tuple(_walk(item, matcher) for item in value)
        new = value if all(a is b for a, b in zip(items, value, strict=True)) else items
    elif isinstance(value, dict):
        pairs = [(_walk(k, matcher), _walk(v, matcher)) for k, v in value.items()]
        changed = any(
            k is not k0 or v is not v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)
        )
        new = dict(pairs) if changed else value
    elif (names := _dataclass_fields(value)) is not None:
        changes = {}
        for name in names:
            old = getattr(value, name)
            if (scrubbed := _walk(old, matcher)) is not old:
                changes[name] = scrubbed
        new = dataclasses.replace(cast(Any, value), **changes) if changes else value
    return new  # type: ignore[no-any-return]  # each branch returns the type it was given (replace() keeps the class)


def _dataclass_fields(value: object) -> tuple[str, ...] | None:
    """The field names of *value* when it is a dataclass instance, else ``None``."""
    kind = type(value)
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    return names
