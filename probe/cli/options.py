"""Options and lookups that several ``probe`` commands share."""

from __future__ import annotations

from pathlib import Path

import click

from probe.settings import load_settings

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
    return load_settings(config_file).storage.database_url
