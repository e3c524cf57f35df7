"""The probe's network as the helper sees it: ASN and country of the address a request came from.

``whoami`` answers only these two facts, so a probe records ``probe_asn``/``probe_cc``
without ever learning (or storing) its own address. Both lookups are offline:

- ASN: any :func:`probe.ipinfo.load_asn_database` file (CSV, TOML or ``.mmdb``);
- country: a CSV ``network,cc`` table (``#`` comments; more columns ignored), or a MaxMind
  country/city ``.mmdb`` (``country.iso_code``), read with the optional ``maxminddb``.

Unknown is ``AS0`` / ``ZZ``, OONI's markers for a hidden network.
"""

from __future__ import annotations

import csv
import importlib
import io
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.errors import ConfigError
from probe.ipinfo import AsnLookup, IPNetwork, no_asn

CountryLookup = Callable[[str], str]
"""``cc_of(ip)``: the ISO 3166 alpha-2 code, ``""`` when unknown."""


def no_country(ip: str) -> str:
    """The lookup used without a country table: every country is unknown."""
    return ""


@dataclass(frozen=True, slots=True)
class Geo:
    """IP → (ASN, country) for ``whoami``."""

    asn_of: AsnLookup = no_asn
    cc_of: CountryLookup = field(default=no_country)

    def whoami(self, ip: str | None) -> dict[str, str]:
        """``{"probe_asn": "AS…", "probe_cc": "…"}`` for *ip*; ``AS0``/``ZZ`` when unknown."""
        if ip is None:
            return {"probe_asn": "AS0", "probe_cc": "ZZ"}
        cc = self.cc_of(ip)
        return {"probe_asn": f"AS{self.asn_of(ip)}", "probe_cc": cc if len(cc) == 2 else "ZZ"}


def load_country_database(path: Path | None) -> CountryLookup:
    """Open a country table (``.csv`` or ``.mmdb``); ``None`` gives :func:`no_country`.

    Raises:
        ConfigError: unknown file type, unreadable file, or a bad row (``file:line: problem``).
    """
    if path is None:
        return no_country
    if path.suffix.lower() == ".mmdb":
        return _mmdb(path)
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"{path}: unknown country database type: use .csv or .mmdb")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read country database: {exc}") from None
    table: list[tuple[IPNetwork, str]] = []
    reader = csv.reader(io.StringIO(text))
    header_seen = False
    for row in reader:
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if not header_seen:
            if [cell.strip().lower() for cell in row[:2]] != ["network", "cc"]:
                raise ConfigError(f"{path}:{reader.line_num}: the header must start with network,cc")
            header_seen = True
            continue
        if len(row) < 2 or len(row[1].strip()) != 2 or not row[1].strip().isalpha():
            raise ConfigError(f"{path}:{reader.line_num}: expected network,cc (a two-letter code)")
        try:
            network = ipaddress.ip_network(row[0].strip(), strict=True)
        except ValueError as exc:
            raise ConfigError(f"{path}:{reader.line_num}: invalid network: {exc}") from None
        table.append((network, row[1].strip().upper()))
    # Longest prefix first: the first network holding an address is the most specific one.
    table.sort(key=lambda entry: -entry[0].prefixlen)

    def cc_of(ip: str) -> str:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return ""
        return next((cc for network, cc in table if address in network), "")

    return cc_of


def _mmdb(path: Path) -> CountryLookup:
    try:
        maxminddb = importlib.import_module("maxminddb")
    except ImportError:
        raise ConfigError(f"{path}: reading a .mmdb needs the maxminddb package") from None
    try:
        reader: Any = maxminddb.open_database(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{path}: cannot read MaxMind database: {exc}") from None

    def cc_of(ip: str) -> str:
        try:
            record = reader.get(ip)
        except ValueError:
            return ""
        country = record.get("country") if isinstance(record, dict) else None
        code = country.get("iso_code") if isinstance(country, dict) else None
        return code if isinstance(code, str) else ""

    return cc_of
