"""``probe daemon``: scheduled rounds until SIGTERM/SIGINT (the volunteer's long-running probe)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from probe.cli.options import config_option, db_option

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    # Loaded here, not for ``--help``.
    from probe.rounds import service
    from probe.rounds.daemon import run_daemon
    from probe.rounds.settings import load_settings

    setup_logging()  # first: a skipped target-list row is logged in the daemon's format
    settings = load_settings(config_file)
    plan = service.plan_round(settings)  # bad settings or target lists: exit 2 before anything runs
    run_daemon(plan, db_url or settings.storage.database_url)


def setup_logging(level: int = logging.INFO) -> None:
    """One line per record on stderr, UTC timestamps (journald and ``docker logs`` add none of ours)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries speak up only for warnings: APScheduler logs every job start, httpx every
    # request and Alembic every migration step at INFO; our round lines say what matters.
    root.setLevel(logging.WARNING)
    logging.getLogger("probe").setLevel(level)
