"""Options and lookups that several ``probe`` commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def config_option(uses: str) -> Callable[[F], F]:
    """``--config FILE``: the settings file, a TOML file that must exist if given; *uses* says what for."""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path, dir_okay=False),
        help=f"Settings file (TOML): {uses}. Default: built-in defaults.",
    )


db_option = click.option(
    "--db", "db_url", metavar="URL", help="Database URL. Default: settings, else SQLite in the data dir."
)


def database_url(db_url: str | None, config_file: Path | None) -> str | None:
    """``--db`` if given, else the settings file's ``storage.database_url``, else ``None`` (SQLite default).

    Raises:
        ConfigError: the settings file is invalid.
    """
    if db_url is not None:
        return db_url
    from probe.rounds.settings import load_settings  # loaded on use: not for --help

    return load_settings(config_file).storage.database_url
