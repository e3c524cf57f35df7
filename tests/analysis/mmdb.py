"""A minimal MaxMind DB writer (format 2.0, IPv4 tree, 24-bit records) for tests.

Enough to build a tiny ASN database that the real ``maxminddb`` reader opens, so the probe's
``.mmdb`` support is tested against the actual format rather than a mock. Networks must not
nest (a leaf cannot also be an inner node here).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_RECORD_BYTES = 3  # 24-bit records


def write_asn_mmdb(path: Path, networks: dict[str, int]) -> None:
    """Write an IPv4 GeoLite2-ASN-style database mapping each CIDR to its ASN."""
    nodes: list[list[tuple[str, int] | None]] = [[None, None]]
    data = bytearray()
    for cidr, asn in networks.items():
        network = ipaddress.IPv4Network(cidr)
        offset = len(data)
        data += _encode({"autonomous_system_number": asn, "autonomous_system_organization": f"AS{asn} test"})
        bits, node = int(network.network_address), 0
        for depth in range(network.prefixlen):
            bit = (bits >> (31 - depth)) & 1
            if depth == network.prefixlen - 1:
                nodes[node][bit] = ("data", offset)
                break
            child = nodes[node][bit]
            if child is None:
                nodes.append([None, None])
                child = nodes[node][bit] = ("node", len(nodes) - 1)
            node = child[1]
    count = len(nodes)

    def record(entry: tuple[str, int] | None) -> bytes:
        if entry is None:
            value = count  # "no data"
        elif entry[0] == "node":
            value = entry[1]
        else:
            value = count + 16 + entry[1]
        return value.to_bytes(_RECORD_BYTES, "big")

    tree = b"".join(record(left) + record(right) for left, right in nodes)
    metadata = _encode(
        {
            "node_count": ("uint32", count),
            "record_size": ("uint16", 24),
            "ip_version": ("uint16", 4),
            "database_type": "GeoLite2-ASN",
            "languages": ["en"],
            "binary_format_major_version": ("uint16", 2),
            "binary_format_minor_version": ("uint16", 0),
            "build_epoch": ("uint64", 1_700_000_000),
            "description": {"en": "reachprobe test database"},
        }
    )
    path.write_bytes(tree + b"\x00" * 16 + bytes(data) + _METADATA_MARKER + metadata)


_TYPES = {"utf8": 2, "uint16": 5, "uint32": 6, "map": 7, "uint64": 9, "array": 11}


def _control(kind: str, size: int) -> bytes:
    # control byte (type << 5 | size), then the extended type, then extra size bytes
    assert size < 285
    small, extra = (size, b"") if size < 29 else (29, bytes([size - 29]))
    number = _TYPES[kind]
    if number <= 7:
        return bytes([(number << 5) | small]) + extra
    return bytes([small, number - 7]) + extra


def _encode(value: object) -> bytes:
    if isinstance(value, tuple):
        kind, number = value
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return _control(kind, len(raw)) + raw
    if isinstance(value, int):
        return _encode(("uint32", value))
    if isinstance(value, str):
        raw = value.encode()
        return _control("utf8", len(raw)) + raw
    if isinstance(value, list):
        return _control("array", len(value)) + b"".join(_encode(item) for item in value)
    assert isinstance(value, dict)
    return _control("map", len(value)) + b"".join(_encode(k) + _encode(v) for k, v in value.items())
