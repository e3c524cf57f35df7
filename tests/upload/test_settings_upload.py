"""The ``[upload]`` section: off by default, every bad value named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import ConfigError
from probe.rounds.settings import Settings, load_settings


def test_nothing_is_uploaded_by_default() -> None:
    upload = Settings().upload
    assert (upload.collector_url, upload.token, upload.ca_file) == (None, None, None)
    assert (upload.batch_size, upload.timeout, upload.retry_min_minutes, upload.retry_max_minutes) == (
        50,
        30.0,
        5,
        360,
    )


def test_a_full_section_loads(tmp_path: Path, ca_file: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        "[upload]\n"
        'collector_url = "https://collector.example.org/"\n'
        'token = "fleet-7f3a"\n'
        f'ca_file = "{ca_file}"\n'
        "batch_size = 10\ntimeout = 5\nretry_min_minutes = 1\nretry_max_minutes = 60\n"
    )
    upload = load_settings(path).upload
    assert (upload.collector_url, upload.token, upload.ca_file, upload.batch_size) == (
        "https://collector.example.org/",
        "fleet-7f3a",
        ca_file,
        10,
    )


def test_where_results_go_is_not_part_of_the_rounds_digest(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[upload]\ncollector_url = "https://collector.example.org/"\ntoken = "t"\n')
    assert load_settings(path).digest() == Settings().digest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('collector_url = "ftp://x.example/"', "upload.collector_url: unsupported URL scheme 'ftp'"),
        ('collector_url = "https:///nohost"', "upload.collector_url: "),
        ("collector_url = 3", "upload.collector_url: Input should be a valid string"),
        (
            'collector_url = "https://probe:s3cret@c.example/"',
            "upload.collector_url: no user or password in the URL (a credential goes in upload.token)",
        ),
        (
            'collector_url = "https://c.example/?fleet=7"',
            "upload.collector_url: the collector's base URL takes",
        ),
        ('token = ""', "upload.token: String should have at least 1 character"),
        ('token = "two words"', "upload.token: String should match pattern"),
        ('ca_file = "/nonexistent/ca.pem"', "upload.ca_file: cannot read /nonexistent/ca.pem: No such file"),
        ("batch_size = 0", "upload.batch_size: Input should be greater than or equal to 1"),
        ('batch_size = "50"', "upload.batch_size: Input should be a valid integer"),
        ("timeout = 0", "upload.timeout: Input should be greater than 0"),
        (
            "retry_min_minutes = 60\nretry_max_minutes = 5",
            "upload: retry_max_minutes (5) must be at least retry_min_minutes (60)",
        ),
        ("colector_url = 'http://x/'", "upload.colector_url: unknown setting"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(f"[upload]\n{text}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}: {message}")
