"""Fingerprint files: OONI schema validation with line numbers, matching per location and pattern type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probe.errors import ConfigError
from probe.fingerprints import COLUMNS, Fingerprint, FingerprintDB, default_fingerprints
from probe.resources import config_dir
from tests.analysis.builders import response

HEADER = ",".join(COLUMNS)
PAGES = Path(__file__).parent / "pages"


def write(tmp_path: Path, *rows: str, name: str = "mine.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def row(name: str, location: str, kind: str, pattern: str, scope: str = "isp") -> str:
    quoted = '"' + pattern.replace('"', '""') + '"'
    return f"{name},{scope},,{location},{kind},{quoted},5,PK,test,,"


@pytest.fixture(scope="module")
def shipped() -> FingerprintDB:
    return default_fingerprints()


def test_shipped_files_use_the_exact_ooni_header() -> None:
    for name in ("dns.csv", "http.csv"):
        first = config_dir().joinpath("fingerprints", name).read_text(encoding="utf-8").splitlines()[0]
        assert first == (
            "name,scope,other_names,location_found,pattern_type,pattern,"
            "confidence_no_fp,expected_countries,source,exp_url,notes"
        )


def test_shipped_pakistan_rows(shipped: FingerprintDB) -> None:
    by_name = {fp.name: fp for fp in shipped.fingerprints}
    assert by_name["ooni.pk_3"].pattern == "203.82.48.83"
    assert by_name["ooni.pk_4"].pattern == "203.82.48.86"
    for name in (
        "ooni.pk_1",
        "ooni.pk_3",
        "cp.b_nat_pak_isp_common_blockpage",
        "cp.c_isp_pk_witribe",
        "cp.c_isp_pk_wateen_body",
        "cp.c_isp_pk_wateen_location",
        "cp.c_isp_pk_wateen_2",
    ):
        assert by_name[name].expected_countries == ("PK",), name
        assert by_name[name].is_censorship, name
    for opt_in in ("ooni.pk_4", "ooni.pk_2"):
        assert by_name[opt_in].scope == "inst"
        assert not by_name[opt_in].is_censorship
        assert "Opt-in" in by_name[opt_in].notes
    assert {"cl.prod_netsweeper_blockpage", "cl.prod_netsweeper_inject", "ooni.es_1"} <= set(by_name)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("surf_safely.html", "cp.b_nat_pak_isp_common_blockpage"),
        ("safeweb.html", "ooni.pk_2"),
    ],
)
def test_verbatim_pakistan_pages(shipped: FingerprintDB, page: str, expected: str) -> None:
    found = shipped.match_http(response(200, (PAGES / page).read_bytes(), ()))
    assert found is not None and found.name == expected


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (
            b'<iframe src="http://119.73.65.87:8080/redirect.html?accessurl=aHR0cA=="></iframe>',
            (),
            "ooni.pk_1",
        ),
        (b'<a href="http://redirect.wi-tribe.net.pk/alert/">', (), "cp.c_isp_pk_witribe"),
        (b"", (("Location", "http://restrict.wateen.net/restrict/"),), "cp.c_isp_pk_wateen_location"),
        (b"", (("location", "https://restrictk.wateen.net/?u=1"),), "rp.pk_wateen_location_k"),
        (b"<img src='http://poweredbynetsweeper.com/logo.png'>", (), "cl.prod_netsweeper_blockpage"),
        (
            b"",
            (("Location", "http://10.1.1.1:8080/webadmin/deny/index.php?dpid=7"),),
            "cl.prod_netsweeper_inject",
        ),
        (b"", (("Server", "V2R2C00-IAE/1.0"),), "ooni.es_1"),
        (b"PROHIBITED  for\r\nviewership from within PAKISTAN", (), "rp.pk_surfsafely_regexp"),
        (b"<html>hello</html>", (("Server", "nginx"),), None),
    ],
)
def test_shipped_http_matches(
    shipped: FingerprintDB, body: bytes, headers: tuple[tuple[str, str], ...], expected: str | None
) -> None:
    found = shipped.match_http(response(200, body, headers))
    assert (found.name if found else None) == expected


def test_dns_matches_only_whole_answers(shipped: FingerprintDB) -> None:
    found = shipped.match_dns(["93.184.215.14", "203.82.48.83"])
    assert found is not None and found.name == "ooni.pk_3"
    assert shipped.match_dns(["203.82.48.8", "203.82.48.830"]) is None


@pytest.mark.parametrize(
    ("location", "kind", "pattern", "body", "headers", "hit"),
    [
        ("body", "full", "exact", b"exact", (), True),
        ("body", "full", "exact", b"exactly", (), False),
        ("body", "prefix", "<html><b>Blocked", b"<html><b>Blocked by order", (), True),
        ("body", "prefix", "Blocked", b"<html>Blocked", (), False),
        ("body", "contains", "Blocked", b"<html>Blocked", (), True),
        ("body", "contains", "blocked", b"<html>Blocked", (), False),
        ("body", "regexp", r"(?i)block(ed|ing)\b", b"site BLOCKING here", (), True),
        ("body", "regexp", r"^Blocked$", b"Blocked\nmore", (), False),
        ("header.location", "prefix", "http://deny.", b"", (("LOCATION", "http://deny.example/x"),), True),
        ("header.location", "prefix", "http://deny.", b"http://deny.example/x", (), False),
        ("header.x-app-url", "contains", "deny", b"", (("X-App-Url", "/deny/1"),), True),
        ("header.server", "full", "Blocker/1.0", b"", (("Server", "Blocker/1.0 (Linux)"),), False),
    ],
)
def test_matching_per_location_and_pattern_type(
    tmp_path: Path,
    location: str,
    kind: str,
    pattern: str,
    body: bytes,
    headers: tuple[tuple[str, str], ...],
    hit: bool,
) -> None:
    db = FingerprintDB.load([write(tmp_path, row("t.1", location, kind, pattern))])
    assert (db.match_http(response(200, body, headers)) is not None) is hit


def test_dns_pattern_types(tmp_path: Path) -> None:
    db = FingerprintDB.load(
        [write(tmp_path, row("d.1", "dns", "prefix", "10.66."), row("d.2", "dns", "regexp", r"^blocked\."))]
    )
    assert db.match_dns(["10.66.1.2"]) == db.fingerprints[0]
    assert db.match_dns(["blocked.isp.example"]) == db.fingerprints[1]
    assert db.match_dns(["10.67.1.2"]) is None


def test_first_row_in_file_order_names_the_match(tmp_path: Path) -> None:
    db = FingerprintDB.load(
        [
            write(
                tmp_path,
                row("first", "body", "contains", "Blocked"),
                row("second", "body", "contains", "Blocked"),
            )
        ]
    )
    found = db.match_http(response(200, b"Blocked", ()))
    assert found is not None and found.name == "first"


def test_known_false_positive_cancels_other_matches(tmp_path: Path) -> None:
    rows = (
        row("vague", "body", "contains", "Access denied"),
        row("cf", "body", "contains", "cloudflare", "fp"),
    )
    db = FingerprintDB.load([write(tmp_path, *rows)])
    assert db.match_http(response(200, b"Access denied by cloudflare", ())) is None
    assert db.match_http(response(200, b"Access denied", ())) is not None


def test_operator_file_beside_the_shipped_ones(tmp_path: Path) -> None:
    shipped = sorted(config_dir().joinpath("fingerprints").iterdir(), key=lambda f: f.name)
    extra = write(tmp_path, row("op.isp_1", "body", "contains", "Blocked by ExampleNet"))
    db = FingerprintDB.load([*shipped, extra])
    found = db.match_http(response(200, b"<p>Blocked by ExampleNet</p>", ()))
    assert isinstance(found, Fingerprint) and found.origin == f"{extra}:2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ":1: the header must be name,scope,"),
        ("name,scope,pattern\n", ":1: the header must be name,scope,"),
        (f"{HEADER}\nx,isp,,body,contains,p,5,PK,s,\n", ":2: expected 11 fields, got 10"),
        (f"{HEADER}\n,isp,,body,contains,p,5,PK,s,,\n", ":2: empty name"),
        (f"{HEADER}\nx,country,,body,contains,p,5,PK,s,,\n", ":2: unknown scope 'country'"),
        (f"{HEADER}\nx,isp,,header,contains,p,5,PK,s,,\n", ":2: unknown location_found 'header'"),
        (
            f"{HEADER}\nx,isp,,header.Location,contains,p,5,PK,s,,\n",
            ":2: unknown location_found 'header.Location'",
        ),
        (f"{HEADER}\nx,isp,,body,glob,p,5,PK,s,,\n", ":2: unknown pattern_type 'glob'"),
        (f"{HEADER}\nx,isp,,body,contains, ,5,PK,s,,\n", ":2: empty pattern"),
        (f"{HEADER}\nx,isp,,body,regexp,(unclosed,5,PK,s,,\n", ":2: invalid regexp '(unclosed'"),
        (f"{HEADER}\nx,isp,,body,contains,p,high,PK,s,,\n", ":2: confidence_no_fp must be a whole number"),
        (f"{HEADER}\nx,isp,,body,contains,p,5,Pakistan,s,,\n", ":2: expected_countries: 'Pakistan'"),
        (
            f'{HEADER}\nx,isp,,body,contains,"two\nlines",5,PK,s,,\ny,isp,,body,bad,p,5,PK,s,,\n',
            ":4: unknown pattern_type 'bad'",
        ),
        (f"{HEADER}\nx,isp,,body,contains,p,5,PK,s,,\n\nx,isp,,body,contains,q,5,PK,s,,\n", ":4: duplicate"),
    ],
)
def test_validation_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        FingerprintDB.load([path])
    assert str(info.value).startswith(f"{path}{message}")
    assert "\n" not in str(info.value)


def test_duplicate_across_files_names_both(tmp_path: Path) -> None:
    one = write(tmp_path, row("same", "body", "contains", "a"), name="one.csv")
    two = write(tmp_path, row("same", "body", "contains", "b"), name="two.csv")
    with pytest.raises(
        ConfigError,
        match="^" + re.escape(f"{two}:2: duplicate fingerprint name 'same' (first defined at {one}:2)") + "$",
    ):
        FingerprintDB.load([one, two])


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("missing.csv: cannot read fingerprints")):
        FingerprintDB.load([tmp_path / "missing.csv"])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=re.escape("binary.csv: cannot read fingerprints: not UTF-8 text")):
        FingerprintDB.load([binary])
