"""Facts about IP addresses computed offline: bogon ranges and IP → ASN.

:func:`is_bogon` is OONI's ``netxlite.IsBogon`` (reference §1.3): the exact IPv4 and IPv6
ranges, the 6to4 (``2002::/16``) and Teredo (``2001::/32``) addresses that embed an IPv4 bogon,
and any string that is not an IP address.

IP → ASN never makes a network call. :func:`load_asn_database` reads what the operator (or the
lab) configures as ``network.asn_database``:

- ``*.csv`` — a ``network,asn`` header, then one CIDR and its ASN (``64500`` or ``AS64500``)
  per line; more columns (an AS name…) may follow and are ignored; ``#`` starts a comment line.
- ``*.toml`` — a ``[networks]`` table: ``"10.0.0.0/8" = 64500``.
- ``*.mmdb`` — a MaxMind-format ASN database (GeoLite2-ASN, DB-IP, IPinfo…), read with the
  optional ``maxminddb`` package; configuring one without that package installed is a
  :class:`~probe.errors.ConfigError` that says so.

A lookup is a plain callable ``asn_of(ip) -> int`` that returns 0 when the address is unknown,
which is what OONI's analysis treats as "ASN lookup failed". The longest matching prefix wins.
"""

from __future__ import annotations

import csv
import importlib
import io
import ipaddress
import logging
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from probe.errors import ConfigError

AsnLookup = Callable[[str], int]
"""``asn_of(ip)``: the ASN announcing *ip*, 0 when unknown (or not an IP address)."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BOGONS_V4: Final = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
    )
)
_BOGONS_V6: Final = tuple(
    ipaddress.IPv6Network(cidr)
    for cidr in (
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "::/96",
        "100::/64",
        "2001:10::/28",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
        # 6to4 (2002:VVVV:VVVV::/48 embeds the IPv4 address V) of each IPv4 bogon
        "2002::/24",
        "2002:a00::/24",
        "2002:7f00::/24",
        "2002:a9fe::/32",
        "2002:ac10::/28",
        "2002:c000::/40",
        "2002:c000:200::/40",
        "2002:c0a8::/32",
        "2002:c612::/31",
        "2002:c633:6400::/40",
        "2002:cb00:7100::/40",
        "2002:e000::/20",
        "2002:f000::/20",
        "2002:ffff:ffff::/48",
        # Teredo (2001:0:VVVV:VVVV::/64 embeds the server's IPv4 address V) likewise
        "2001::/40",
        "2001:0:a00::/40",
        "2001:0:7f00::/40",
        "2001:0:a9fe::/48",
        "2001:0:ac10::/44",
        "2001:0:c000::/56",
        "2001:0:c000:200::/56",
        "2001:0:c0a8::/48",
        "2001:0:c612::/47",
        "2001:0:c633:6400::/56",
        "2001:0:cb00:7100::/56",
        "2001:0:e000::/36",
        "2001:0:f000::/36",
        "2001:0:ffff:ffff::/64",
    )
)


def is_bogon(ip: str, *, public: Iterable[IPNetwork] = ()) -> bool:
    """True when *ip* is in a bogon range, or is not an IP address at all (OONI's rule).

    Addresses inside one of the *public* networks are not bogons (the lab's 10.x "Internet").
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return True
    if any(address in network for network in public):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return any(address in network for network in _BOGONS_V6)
    return any(address in network for network in _BOGONS_V4)


def is_loopback(ip: str) -> bool:
    """True for 127.0.0.0/8 and ``::1``; False for anything else, including non-addresses."""
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def parse_networks(
    values: Iterable[str | IPNetwork], *, where: str = "public_networks"
) -> tuple[IPNetwork, ...]:
    """CIDR strings (or networks) as networks; host bits may be set.

    Raises:
        ConfigError: a value is not a network (``where: invalid network …``).
    """
    try:
        return tuple(ipaddress.ip_network(value, strict=False) for value in values)
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid network: {exc}") from None


def no_asn(ip: str) -> int:
    """The lookup used when no database is configured: every ASN is unknown (0)."""
    return 0


class NetworkTable:
    """Longest-prefix match of an address over a table of ``network → ASN``."""

    def __init__(self, entries: Iterable[tuple[IPNetwork, int]]) -> None:
        # One dict per prefix length, probed from the longest: O(prefix lengths) per lookup.
        self._by_length: dict[tuple[int, int], dict[IPNetwork, int]] = {}
        for network, asn in entries:
            self._by_length.setdefault((network.version, network.prefixlen), {})[network] = asn
        self._lengths = sorted(self._by_length, key=lambda key: -key[1])

    def __len__(self) -> int:
        return sum(len(table) for table in self._by_length.values())

    def __call__(self, ip: str) -> int:
        """The ASN of the longest network holding *ip*; 0 when none does."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return 0
        for version, length in self._lengths:
            if version != address.version:
                continue
            network = ipaddress.ip_network(f"{address}/{length}", strict=False)
            asn = self._by_length[(version, length)].get(network)
            if asn is not None:
                return asn
        return 0


class MMDBLookup:
    """IP → ASN from a MaxMind-format database (``autonomous_system_number`` records)."""

    def __init__(self, path: Path) -> None:
        """Open *path*.

        Raises:
            ConfigError: the ``maxminddb`` package is missing, or the file is not a readable
                MaxMind DB.
        """
        try:
            maxminddb = importlib.import_module("maxminddb")
        except ImportError:
            raise ConfigError(
                f"{path}: reading a .mmdb ASN database needs the maxminddb package "
                "(pip install maxminddb), or use a CSV/TOML network table"
            ) from None
        try:
            self._reader: Any = maxminddb.open_database(str(path))
        except (OSError, ValueError, RuntimeError) as exc:  # InvalidDatabaseError is a RuntimeError
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(f"{path}: cannot read MaxMind database: {reason}") from None
        self._path = path

    def __reduce__(self) -> tuple[Callable[[Path], AsnLookup], tuple[Path]]:
        # The reader maps the file and cannot be pickled: a round's process opens it again.
        return (_reopened, (self._path,))

    def __call__(self, ip: str) -> int:
        """The ASN of *ip*; 0 when the database has no (or no ASN) record for it."""
        try:
            record = self._reader.get(ip)
        except ValueError:  # not an IP address
            return 0
        asn = record.get("autonomous_system_number") if isinstance(record, dict) else None
        return asn if isinstance(asn, int) else 0

    def close(self) -> None:
        """Release the database file."""
        self._reader.close()


def first_known(*lookups: AsnLookup) -> AsnLookup:
    """A lookup that asks each of *lookups* in turn and returns the first non-zero ASN."""

    def asn_of(ip: str) -> int:
        for lookup in lookups:
            asn = lookup(ip)
            if asn:
                return asn
        return 0

    return asn_of


def _reopened(path: Path) -> AsnLookup:
    """The MaxMind database at *path* opened again where a plan is unpickled (a round's
    process); if it no longer can be, no lookup, said once in the log: the round still runs,
    with every network address's ASN unknown (0), as without a database."""
    try:
        return MMDBLookup(path)
    except ConfigError as exc:
        logging.getLogger("probe.daemon").error("%s (measuring without it: every ASN unknown)", exc)
        return no_asn


def load_asn_database(path: Path | None) -> AsnLookup:
    """Open the configured IP → ASN database; ``None`` gives :func:`no_asn`.

    Raises:
        ConfigError: unknown file type, unreadable file, or a bad row (``file:line: problem``).
    """
    if path is None:
        return no_asn
    suffix = path.suffix.lower()
    if suffix == ".mmdb":
        return MMDBLookup(path)
    if suffix not in (".csv", ".toml"):
        raise ConfigError(
            f"{path}: unknown ASN database type {suffix or '(none)'!r}: use .csv, .toml or .mmdb"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ASN database: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read ASN database: not UTF-8 text") from None
    entries = _parse_csv(path, text) if suffix == ".csv" else _parse_toml(path, text)
    return NetworkTable(entries)


def _parse_csv(path: Path, text: str) -> list[tuple[IPNetwork, int]]:
    reader = csv.reader(io.StringIO(text))
    rows = [
        (reader.line_num, row)
        for row in reader
        if any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#")
    ]
    if not rows or [cell.strip().lower() for cell in rows[0][1][:2]] != ["network", "asn"]:
        raise ConfigError(f"{path}:1: the header must start with network,asn")
    entries: list[tuple[IPNetwork, int]] = []
    for number, row in rows[1:]:
        if len(row) < 2:
            raise ConfigError(f"{path}:{number}: expected network,asn")
        where = f"{path}:{number}"
        entries.append((_network(row[0], where), _asn(row[1], where)))
    return entries


def _parse_toml(path: Path, text: str) -> list[tuple[IPNetwork, int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    networks = data.get("networks")
    if not isinstance(networks, dict) or set(data) != {"networks"}:
        raise ConfigError(f'{path}: expected one [networks] table of "CIDR" = ASN')
    return [
        (_network(cidr, f"{path}: networks.{cidr!r}"), _asn(asn, f"{path}: networks.{cidr!r}"))
        for cidr, asn in networks.items()
    ]


def _network(text: str, where: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid network {text.strip()!r}: {exc}") from None


def _asn(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: invalid ASN {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().upper().removeprefix("AS").isdigit():
        number = int(value.strip().upper().removeprefix("AS"))
    else:
        raise ConfigError(f"{where}: invalid ASN {value!r}")
    if not 0 < number < 2**32:
        raise ConfigError(f"{where}: invalid ASN {value!r}: out of range")
    return number
