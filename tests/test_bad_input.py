"""Bad input ends in one line on stderr and exit 2 before anything is stored; the machine's
failures (a full disk, a read-only database) end in exit 3.

Each case here was, before it was fixed, accepted (a round "completed" with every target an
error), or ended in a traceback (exit 1). Everything runs ``probe run``/``probe export``
in-process against loopback settings: no control, no resolvers, IP-literal targets.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from measurements.store.store import open_store
from probe.cli import main
from probe.errors import ConfigError, StorageError
from probe.rounds.settings import load_settings
from probe.rounds.targets import load_targets

HEADER = "url,category_code,category_description,date_added,source,notes\n"
ROW = "http://127.0.0.1:9/,NEWS,News Media,2024-01-01,test,\n"

BASE = (
    "[measure]\nresolvers = []\nallow_loopback = true\ntcp_timeout = 1\nhttp_timeout = 1\n{measure}"
    "[tests]\nwhatsapp = false\ntelegram = false\nsignal = false\n"
    "facebook_messenger = false\nhttp3 = false\n"
    '[targets]\nlists = ["targets.csv"]\n'
    '[storage]\ndatabase_url = "sqlite:///{db}"\n{extra}'
)


def _settings(tmp_path: Path, *, measure: str = "", extra: str = "", targets: bytes | None = None) -> Path:
    (tmp_path / "targets.csv").write_bytes(targets if targets is not None else (HEADER + ROW).encode())
    path = tmp_path / "settings.toml"
    path.write_text(BASE.format(measure=measure, extra=extra, db=tmp_path / "m.sqlite3"), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return code, err.removesuffix("\n")


# --- settings ---------------------------------------------------------------------------------


@pytest.fixture
def not_pem(tmp_path: Path) -> Path:
    path = tmp_path / "ca.txt"
    path.write_text("this is not a certificate\n")
    return path


def _settings_cases(tmp: Path) -> list[tuple[str, str, str]]:
    """(``[measure]`` lines, other sections, the message after ``SETTINGS: ``)."""
    return [
        (
            f'ca_file = "{tmp / "nope.pem"}"\n',
            "",
            f"measure.ca_file: cannot read {tmp / 'nope.pem'}: No such file or directory",
        ),
        (
            f'ca_file = "{tmp / "ca.txt"}"\n',
            "",
            f"measure.ca_file: {tmp / 'ca.txt'}: no PEM certificate in it",
        ),
        (
            f'ca_file = "{tmp}"\n',
            "",
            f"measure.ca_file: cannot read {tmp}: Is a directory",
        ),
        (
            "",
            '[network]\npublic_networks = ["10.0.0.0/8", "10.0.0.0/33"]\n',
            "network.public_networks.1: '10.0.0.0/33' is not an IP network (CIDR: 10.0.0.0/8, 2001:db8::/32)",
        ),
        (
            "",
            '[control]\nurl = "notaurl"\n',
            "control.url: unsupported URL scheme '' in 'notaurl': only http and https",
        ),
        (
            "",
            '[control]\nurl = "ftp://127.0.0.1/"\n',
            "control.url: unsupported URL scheme 'ftp' in 'ftp://127.0.0.1/': only http and https",
        ),
        ("", '[control]\nurl = "https://"\n', "control.url: no host name in URL 'https://'"),
        (
            'use_system_resolver = "no"\n',
            "",
            "measure.use_system_resolver: Input should be a valid boolean (got 'no')",
        ),
        (
            "use_system_resolver = 1\n",
            "",
            "measure.use_system_resolver: Input should be a valid boolean (got 1)",
        ),
        ("concurrency = 4.0\n", "", "measure.concurrency: Input should be a valid integer (got 4.0)"),
        ('concurrency = "4"\n', "", "measure.concurrency: Input should be a valid integer (got '4')"),
        ('dns_timeout = "1"\n', "", "measure.dns_timeout: Input should be a valid number (got '1')"),
        (
            "",
            '[schedule]\ninterval_minutes = "5"\n',
            "schedule.interval_minutes: Input should be a valid number (got '5')",
        ),
        (
            "",
            "[schedule]\njitter_minutes = true\n",
            "schedule.jitter_minutes: Input should be a valid number (got True)",
        ),
        ("", 'source = "x"\n', "source: unknown setting"),
        (
            "",
            '[network]\nfingerprints = "x.csv"\n',
            "network.fingerprints: Input should be a valid tuple (got 'x.csv')",
        ),
    ]


@pytest.mark.parametrize("case", range(16))
def test_bad_settings_exit_2_with_one_line_and_touch_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], not_pem: Path, case: int
) -> None:
    measure, extra, message = _settings_cases(tmp_path)[case]
    settings = _settings(tmp_path, measure=measure, extra=extra)
    # (`source = "x"` after [storage] would be a storage key: put it first)
    if extra.startswith("source"):
        settings.write_text(extra + settings.read_text().replace(extra, ""))
    assert _run(capsys, "run", "--config", str(settings)) == (2, f"probe: error: {settings}: {message}")
    assert not (tmp_path / "m.sqlite3").exists()


def test_a_bad_database_url_in_the_settings_names_the_key(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[storage]\ndatabase_url = "notadb"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(settings)
    assert str(info.value) == (
        f"{settings}: storage.database_url: 'notadb' is not a database URL"
        " (e.g. sqlite:///path or postgresql://…)"
    )


def test_a_settings_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.write_bytes(b"\xef\xbb\xbf" + settings.read_bytes())
    assert load_settings(settings).measure.allow_loopback is True


def test_strict_types_still_take_ints_for_floats(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[schedule]\ninterval_minutes = 5\n[measure]\ntcp_timeout = 2\n")
    settings = load_settings(path)
    assert (settings.schedule.interval_minutes, settings.measure.tcp_timeout) == (5.0, 2.0)


def test_a_good_ca_file_and_networks_load(tmp_path: Path, ca_file: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        f'[measure]\nca_file = "{ca_file}"\n[network]\npublic_networks = ["10.0.0.1/8", "fd00::/8"]\n'
        '[control]\nurl = "https://th.example.org:8443/"\n'
    )
    settings = load_settings(path)
    assert settings.measure.ca_file == ca_file
    assert settings.network.public_networks == ("10.0.0.1/8", "fd00::/8")


# --- target lists -----------------------------------------------------------------------------


def _csv_cases() -> list[tuple[bytes, str]]:
    head = HEADER.encode()
    return [
        (head + b"http://127.0.0.1:9/,NEWS," + b"x" * 140_000 + b",2024,t,\n",
         ":2: a field is longer than 131072 characters"),
        (head + ROW.encode() + b"http://127.0.0.1:9/,NE\0WS,News,2024,t,\n",
         ":3: a NUL character: not a text file"),
        (head + ROW.encode() + b"http://127.0.0.1:9/,NEWS,N\xff\xfe,2024,t,\n", ":3: not UTF-8 text"),
        (head + b"http://127.0.0.1:9/,NEWS,News,2024,t,,extra,more\n",
         ":2: 8 fields, but the header names 6"),
        (b"", ":1: empty file: a test list starts with a header naming a 'url' column"),
        (head + b'"http://127.0.0.1:9/,NEWS,News,2024,t,\n', ":2: malformed CSV: unexpected end of data"),
        (head + b'http://127.0.0.1:9/,"NEWS"x,News,2024,t,\n', ":2: malformed CSV: ',' expected after '\"'"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(7))
def test_bad_target_lists_fail_the_check_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: int
) -> None:
    body, message = _csv_cases()[case]
    settings = _settings(tmp_path, targets=body)
    expected = f"probe: error: {tmp_path / 'targets.csv'}{message}"
    assert _run(capsys, "run", "--check", "--config", str(settings)) == (2, expected)
    assert not (tmp_path / "m.sqlite3").exists()


def test_a_target_list_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + ROW).encode())
    assert [t.url for t in load_targets(path)] == ["http://127.0.0.1:9/"]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["unix", "windows", "old-mac"])
def test_every_line_ending_loads_and_counts_lines(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "list.csv"
    rows = [HEADER.rstrip("\n"), ROW.rstrip("\n"), 'http://127.0.0.1:9/?2,NEWS,"two\nlines"', "ftp://x/"]
    path.write_bytes(newline.join(rows).encode())
    with pytest.raises(ConfigError, match=r"list\.csv:5: unsupported URL scheme 'ftp'"):
        load_targets(path)
    path.write_bytes(newline.join(rows[:3]).encode())
    assert [t.category_description for t in load_targets(path)] == ["News Media", "two\nlines"]


def test_short_rows_and_many_rows_load(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    rows = "".join(f"http://127.0.0.1:9/?n={i},NEWS\n" for i in range(50_000))
    path.write_text(HEADER + rows)
    targets = load_targets(path)
    assert len(targets) == 50_000
    assert (targets[-1].category_code, targets[-1].notes) == ("NEWS", "")


# --- --since / --until ------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("9999-12-31T23:59:59-14:00", "is out of range: in UTC it is after 9999-12-31"),
        ("0001-01-01T00:00+14:00", "is out of range: in UTC it is before 0001-01-01"),
        ("99999999999d", "is out of range: before 0001-01-01"),
        ("999999w", "is out of range: before 0001-01-01"),
    ],
)
def test_times_out_of_range_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, problem: str
) -> None:
    db = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    code, err = _run(capsys, "export", "--db", db, "--format", "csv", option, value)
    assert (code, err) == (2, f"probe: error: Invalid value for '{option}': {value!r} {problem}")


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31T23:59:59", "2024-01-20T19:00+05:00", "2w"])
def test_extreme_but_valid_times_export_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    db = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    open_store(db).close()
    assert main(["export", "--db", db, "--format", "jsonl", "--since", value]) == 0
    assert main(["export", "--db", db, "--format", "jsonl", "--until", value]) == 0
    assert capsys.readouterr().out == ""


# --- exit 3: the machine, not the input -------------------------------------------------------


def test_exit_codes_of_the_error_tree() -> None:
    assert (ConfigError.exit_code, StorageError.exit_code) == (2, 3)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a url: not a database URL (e.g. sqlite:///path or postgresql://…)"),
        (
            "nosuchdb://x",
            "nosuchdb://x: cannot open: unknown database type 'nosuchdb' (use sqlite or postgresql)",
        ),
        (
            "mysql://probe@h/m",
            "mysql://probe@h/m: cannot open: the database driver 'MySQLdb' is not installed",
        ),
    ],
)
def test_a_bad_database_url_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    settings = _settings(tmp_path)
    assert _run(capsys, "run", "--config", str(settings), "--db", url) == (2, f"probe: error: {message}")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty directory nothing can be created in (root: a read-only tmpfs)."""
    where = tmp_path / "ro"
    where.mkdir()
    if os.geteuid() != 0:
        where.chmod(0o555)
        yield where
        where.chmod(0o755)
        return
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_database_that_cannot_be_created_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], read_only_dir: Path
) -> None:
    settings = _settings(tmp_path)
    db = read_only_dir / "m.sqlite3"
    code, err = _run(capsys, "run", "--config", str(settings), "--db", f"sqlite:///{db}")
    assert (code, err) == (3, f"probe: error: {db}: cannot open: unable to open database file")


def test_a_full_disk_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        with (disk / "filler").open("wb", buffering=0) as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 4096)
        settings = _settings(tmp_path)
        db = disk / "m.sqlite3"
        code, err = _run(capsys, "run", "--config", str(settings), "--db", f"sqlite:///{db}")
        assert (code, err) == (3, f"probe: error: {db}: cannot open: database or disk is full")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
