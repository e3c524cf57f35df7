"""Bogons (OONI's exact list) and the offline IP → ASN databases."""

from __future__ import annotations

import importlib.util
import logging
import pickle
import re
import sys
from pathlib import Path

import pytest

from probe.errors import ConfigError
from probe.ipinfo import MMDBLookup, first_known, is_bogon, load_asn_database, no_asn, parse_networks
from tests.analysis.mmdb import write_asn_mmdb

HAVE_MAXMINDDB = importlib.util.find_spec("maxminddb") is not None


@pytest.mark.parametrize(
    "ip",
    [
        "0.0.0.0",
        "0.255.255.255",
        "10.0.0.1",
        "100.64.0.1",
        "100.127.255.255",
        "127.0.0.1",
        "127.0.53.53",
        "169.254.1.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:8.8.8.8",
        "::8.8.8.8",
        "100::1",
        "2001:10::1",
        "2001:db8::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
        "2002:c0a8:0101::1",  # 6to4 of 192.168.1.1
        "2002:ffff:ffff::1",  # 6to4 of 255.255.255.255
        "2001:0:0a00:0001::1",  # Teredo with 10.0.0.1
        "2001:0:c000:0201::1",  # Teredo with 192.0.2.1
        "not-an-ip",
        "",
        "1.2.3",
    ],
)
def test_bogons(ip: str) -> None:
    assert is_bogon(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "198.17.255.255",
        "198.20.0.0",
        "203.82.48.83",
        "223.255.255.255",
        "2001:4860:4860::8888",
        "2606:4700::1111",
        "2002:0808:0808::1",  # 6to4 of 8.8.8.8
        "2001:0:0808:0808::1",  # Teredo with 8.8.8.8
    ],
)
def test_public_addresses_are_not_bogons(ip: str) -> None:
    assert not is_bogon(ip)


def test_no_database_knows_nothing() -> None:
    assert load_asn_database(None) is no_asn
    assert no_asn("8.8.8.8") == 0


def test_csv_table_longest_prefix_wins(tmp_path: Path) -> None:
    path = tmp_path / "asn.csv"
    path.write_text(
        "network,asn,name\n# the lab's world\n10.0.0.0/8,64500,World\n10.1.0.0/16,AS64501,ISP\n"
        "2001:db8::/32,64502\n\n"
    )
    lookup = load_asn_database(path)
    assert [lookup(ip) for ip in ("10.9.9.9", "10.1.2.3", "2001:db8::5", "192.0.2.1", "bogus")] == [
        64500,
        64501,
        64502,
        0,
        0,
    ]


def test_toml_table(tmp_path: Path) -> None:
    path = tmp_path / "asn.toml"
    path.write_text('[networks]\n"10.0.0.0/8" = 64500\n"10.1.0.0/16" = "AS64501"\n')
    lookup = load_asn_database(path)
    assert (lookup("10.1.0.1"), lookup("10.2.0.1"), lookup("11.0.0.1")) == (64501, 64500, 0)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "net,number\n10.0.0.0/8,1\n", "a.csv:1: the header must start with network,asn"),
        ("a.csv", "network,asn\n10.0.0.0/8\n", "a.csv:2: expected network,asn"),
        ("a.csv", "network,asn\n10.0.0.0/8,1\n10.0.0.1/8,2\n", "a.csv:3: invalid network '10.0.0.1/8'"),
        ("a.csv", "network,asn\n# c\n10.0.0.0/8,ASX\n", "a.csv:3: invalid ASN 'ASX'"),
        ("a.csv", "network,asn\n10.0.0.0/8,0\n", "a.csv:2: invalid ASN '0': out of range"),
        ("a.toml", "[networks]\n'10.0.0.0/33' = 1\n", "a.toml: networks.'10.0.0.0/33': invalid network"),
        ("a.toml", "[networks]\n'10.0.0.0/8' = true\n", "a.toml: networks.'10.0.0.0/8': invalid ASN True"),
        ("a.toml", "networks = 3\n", "a.toml: expected one [networks] table"),
        ("a.toml", "[networks\n", "a.toml: invalid TOML"),
        ("a.txt", "", "a.txt: unknown ASN database type '.txt'"),
    ],
)
def test_table_errors_name_file_and_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match="^" + re.escape(f"{tmp_path}/{message}")):
        load_asn_database(path)


def test_missing_table_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("nope.csv: cannot read ASN database")):
        load_asn_database(tmp_path / "nope.csv")


def test_mmdb_without_the_package_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "GeoLite2-ASN.mmdb"
    write_asn_mmdb(path, {"10.0.0.0/8": 64500})
    monkeypatch.setitem(sys.modules, "maxminddb", None)  # makes the import fail
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: reading a .mmdb ASN database needs the maxminddb package")
    ):
        load_asn_database(path)


@pytest.mark.skipif(not HAVE_MAXMINDDB, reason="the optional maxminddb package is not installed")
def test_mmdb_lookup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "GeoLite2-ASN.mmdb"
    write_asn_mmdb(path, {"10.0.0.0/8": 64500, "203.82.48.0/24": 23674, "93.184.215.0/24": 15133})
    lookup = load_asn_database(path)
    assert isinstance(lookup, MMDBLookup)
    found = [lookup(ip) for ip in ("10.1.2.3", "203.82.48.83", "93.184.215.14", "8.8.8.8", "bogus")]
    pickled = pickle.dumps(lookup)  # what a daemon hands its round's process
    copy = pickle.loads(pickled)
    lookup.close()
    assert isinstance(copy, MMDBLookup)
    assert [copy(ip) for ip in ("10.1.2.3", "203.82.48.83", "8.8.8.8")] == [*found[:2], 0]
    copy.close()
    path.unlink()  # gone before the next round: it still runs, without ASNs, and says so
    with caplog.at_level(logging.ERROR, logger="probe.daemon"):
        gone = pickle.loads(pickled)
    assert gone is no_asn
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: cannot read MaxMind database: No such file or directory "
        "(measuring without it: every ASN unknown)"
    ]
    assert found == [
        64500,
        23674,
        15133,
        0,
        0,
    ]


@pytest.mark.skipif(not HAVE_MAXMINDDB, reason="the optional maxminddb package is not installed")
def test_corrupt_mmdb(tmp_path: Path) -> None:
    path = tmp_path / "broken.mmdb"
    path.write_bytes(b"not a database")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: cannot read MaxMind database")):
        load_asn_database(path)


def test_first_known_asks_in_turn() -> None:
    known = {"1.1.1.1": 13335}
    lookup = first_known(no_asn, lambda ip: known.get(ip, 0), lambda ip: 64500)
    assert (lookup("1.1.1.1"), lookup("9.9.9.9")) == (13335, 64500)


def test_public_networks_are_not_bogons() -> None:
    lab_world = parse_networks(["10.66.0.0/16"])
    assert not is_bogon("10.66.1.2", public=lab_world)
    assert is_bogon("10.67.1.2", public=lab_world)
    assert is_bogon("not-an-ip", public=lab_world)


def test_public_networks_must_be_networks() -> None:
    with pytest.raises(ConfigError, match=re.escape("network.public_networks: invalid network")):
        parse_networks(["10.0.0.0/8", "ten"], where="network.public_networks")
