"""The daemon's log: one line per record on stderr, in the same form from each of its processes."""

from __future__ import annotations

import logging
import sys
import time

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """One line per record on stderr, UTC timestamps (journald and ``docker logs`` add none of ours).

    Called by ``probe daemon`` and by each of its rounds' processes
    (:mod:`probe.rounds.process`), whose lines join the daemon's on the stderr they share.
    """
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
