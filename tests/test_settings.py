"""Settings and target lists: defaults, validation, and one-line errors naming file and key/line."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import ConfigError
from probe.resources import config_dir
from probe.rounds.settings import Measure, Settings, load_settings
from probe.rounds.targets import load_many, load_targets


def test_defaults_work_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.measure.concurrency == 16
    assert settings.schedule.interval_minutes == 60
    assert settings.storage.database_url is None
    paths = settings.target_list_paths()
    assert [p.name for p in paths] == ["global-social.csv", "pakistan.csv"]


def test_max_open_defaults_to_at_least_the_concurrency() -> None:
    assert Measure().open_limit == 256  # runner.DEFAULT_MAX_OPEN
    assert Measure(concurrency=300).open_limit == 300
    assert Measure(concurrency=8, max_open=8).open_limit == 8


def test_shipped_settings_file_matches_the_defaults() -> None:
    shipped = load_settings(Path(str(config_dir().joinpath("settings.toml"))))
    assert shipped.model_dump(exclude={"source"}) == Settings().model_dump(exclude={"source"})


def test_relative_target_list_beside_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "mine.csv").write_text("url,category_code\nhttps://example.org/,NEWS\n")
    path = tmp_path / "settings.toml"
    path.write_text('[targets]\nlists = ["mine.csv"]\n')
    settings = load_settings(path)
    (target,) = load_many(settings.target_list_paths())
    assert target.url == "https://example.org/"
    assert target.category_code == "NEWS"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[measure]\nconcurrency = 0\n", "measure.concurrency: Input should be greater than or equal to 1"),
        ("[measure]\nconcurency = 4\n", "measure.concurency: unknown setting"),
        ("[measure]\ndns_timeout = -1\n", "measure.dns_timeout: Input should be greater than 0"),
        ("[measure]\nstall_after = 0\n", "measure.stall_after: Input should be greater than 0"),
        (
            "[measure]\nconcurrency = 100\nmax_open = 64\n",
            "measure: max_open (64) must be at least concurrency (100)",
        ),
        ("[measure]\nresolvers = ['not a resolver']\n", "measure.resolvers: "),
        ("[bogus]\nx = 1\n", "bogus: unknown setting"),
        ("[measure\n", "invalid TOML: "),
        (
            "[storage]\nretention_days = 'forever'\n",
            "storage.retention_days: Input should be a valid integer",
        ),
    ],
)
def test_invalid_settings_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    line = str(info.value)
    assert line.startswith(f"{path}: ")
    assert message in line
    assert "\n" not in line


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read settings: No such file"):
        load_settings(tmp_path / "missing.toml")


def test_missing_target_list(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[targets]\nlists = ["nowhere.csv"]\n')
    with pytest.raises(ConfigError, match=r"targets\.lists: no such target list: nowhere\.csv"):
        load_settings(path).target_list_paths()


def test_digest_changes_with_settings(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[measure]\nconcurrency = 4\n")
    assert load_settings(path).digest() != Settings().digest()
    assert Settings().digest() == Settings().digest()


def test_citizenlab_list_loads_as_is(tmp_path: Path) -> None:
    path = tmp_path / "pk.csv"
    path.write_text(
        "url,category_code,category_description,date_added,source,notes\n"
        "http://www.youporn.com/,PORN,Pornography,2014-04-15,citizenlab,\n"
        'https://x.com/,GRP,Social Networking,2024-02-17,reachprobe,"blocked, since 2024"\n'
    )
    targets = load_targets(path)
    assert [t.url for t in targets] == ["http://www.youporn.com/", "https://x.com/"]
    assert targets[1].notes == "blocked, since 2024"
    assert targets[0].category_description == "Pornography"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("url\nhttps://ok.example/\nftp://bad.example/\n", ":3: "),
        ("url\n\n,\n", ":3: empty url"),
        ("name,site\nx,y\n", ":1: not a test list"),
        ("url\nhttps:///nohost\n", ":2: "),
    ],
)
def test_bad_rows_name_their_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    assert str(info.value).startswith(f"{path}{message}")


def test_shipped_lists_are_valid() -> None:
    targets = load_many(load_settings(None).target_list_paths())
    urls = {t.url for t in targets}
    assert {"https://x.com/", "https://twitter.com/", "https://www.youtube.com/"} <= urls
    assert len(urls) == len(targets)
