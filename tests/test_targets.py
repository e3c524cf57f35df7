"""Target lists: one spelling per target, every citizenlab column, bad rows skipped or refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from probe.errors import ConfigError
from probe.rounds.service import plan_round
from probe.rounds.settings import load_settings
from probe.rounds.targets import Target, canonical_url, load_input_file, load_targets

HEADER = "url,category_code,category_description,date_added,source,notes\n"


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://Ürdü.Example/Path?Q=A", "https://xn--rd-wkac.example/Path?Q=A"),
        ("https://xn--rd-wkac.example/Path?Q=A", "https://xn--rd-wkac.example/Path?Q=A"),
        ("HTTPS://WWW.YouTube.COM/", "https://www.youtube.com/"),
        ("http://Example.com:8080/a#Frag", "http://example.com:8080/a#Frag"),
        ("http://[2001:DB8::1]:8080/", "http://[2001:db8::1]:8080/"),
        ("https://ur.wikipedia.org/wiki/پاکستان", "https://ur.wikipedia.org/wiki/پاکستان"),  # a path stays
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_a_unicode_name_and_its_punycode_are_one_target(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "https://Ürdü.example/,NEWS,News Media,2024-02-17,citizenlab,first\n"
                    "https://xn--rd-wkac.example/,GRP,,,,second\n", encoding="utf-8")  # fmt: skip
    settings = tmp_path / "settings.toml"
    settings.write_text('[targets]\nlists = ["list.csv"]\n')
    plan = plan_round(load_settings(settings))
    assert plan.targets == (
        Target("https://xn--rd-wkac.example/", "NEWS", "News Media", "2024-02-17", "citizenlab", "first"),
    )


def test_bad_rows_are_skipped_in_a_lenient_load_and_refused_in_a_strict_one(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes((HEADER + "http://a.example/\nftp://b.example/\nhttp://c.example/,N\xff\nhttp://d.example/\n")
                     .encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))  # fmt: skip
    problems: list[str] = []
    assert [t.url for t in load_targets(path, problems=problems)] == [
        "http://a.example/",
        "http://d.example/",
    ]
    assert problems == [
        f"{path}:3: unsupported URL scheme 'ftp' in 'ftp://b.example/': only http and https",
        f"{path}:4: not UTF-8 text",
    ]
    with pytest.raises(ConfigError, match=r"list\.csv:4: not UTF-8 text$"):  # bytes are checked first
        load_targets(path)


def test_the_daemon_logs_each_skipped_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "list.csv").write_text(HEADER + "http://a.example/\nnot a url\n")
    settings = tmp_path / "settings.toml"
    settings.write_text('[targets]\nlists = ["list.csv"]\n')
    with caplog.at_level(logging.WARNING, logger="probe.rounds.targets"):
        plan = plan_round(load_settings(settings))  # what `probe daemon` calls
    assert [t.url for t in plan.targets] == ["http://a.example/"]
    problem = "unsupported URL scheme '' in 'not a url': only http and https"
    assert [r.getMessage() for r in caplog.records] == [f"{tmp_path / 'list.csv'}:3: {problem} (row skipped)"]


def test_an_input_file_is_a_test_list_or_one_url_a_line(tmp_path: Path) -> None:
    plain = tmp_path / "urls.txt"
    plain.write_text("# comment\nhttp://A.example/\n\n  https://b.example/x  \nftp://c/\n")
    problems: list[str] = []
    assert [t.url for t in load_input_file(plain, problems=problems)] == [
        "http://a.example/",
        "https://b.example/x",
    ]
    assert problems == [f"{plain}:5: unsupported URL scheme 'ftp' in 'ftp://c/': only http and https"]
    csv_list = tmp_path / "pk.csv"
    csv_list.write_text(HEADER + "http://a.example/,NEWS,News Media,2024-02-17,citizenlab,a note\n")
    assert load_input_file(csv_list) == [
        Target("http://a.example/", "NEWS", "News Media", "2024-02-17", "citizenlab", "a note")
    ]
