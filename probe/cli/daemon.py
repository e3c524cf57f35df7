"""``probe daemon``: scheduled rounds until SIGTERM/SIGINT (the volunteer's long-running probe)."""

from __future__ import annotations

from pathlib import Path

import click

from probe.cli.options import config_option, db_option


@click.command()
@config_option("schedule, targets, measurement, storage")
@db_option
def daemon(config_file: Path | None, db_url: str | None) -> None:
    """Measure every configured target on a schedule until stopped (SIGTERM or Ctrl-C: exit 0).

    Logs to stderr. A round the stop interrupts is stored as ``interrupted``; a database that
    cannot be opened or written (a full disk, a read-only file: what makes `probe run` exit 3)
    costs that round only, and the next one tries again. Bad settings, target lists or
    database URL: one line and exit 2 before anything runs.
    """
    # Loaded here, not for ``--help``; and no more: the daemon measures in processes of its own.
    from probe.rounds.daemon import run_daemon
    from probe.rounds.logs import setup_logging

    setup_logging()
    # Bad settings, target lists or database URL: exit 2 before anything runs.
    run_daemon(config_file=config_file, database_url=db_url)
