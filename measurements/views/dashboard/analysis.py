"""The patterns' detection, kept current for the dashboard without writing to the store.

The dashboard is read-only (an operator may point it at a collector's database with a read-only
role), so it never stores flags: it runs :func:`~measurements.patterns.detect.detect_store` in
memory, once at start and again whenever the rounds changed (a cheap SELECT over the ``rounds``
table, at most every :attr:`Analysis.check_s` seconds). A fresh detection runs in a thread
while pages keep showing the previous one; only the very first waits for it. Detection over a
million measurements takes about 2.5 s (``bench/patterns.py``), so a page never pays for it
beyond the first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from measurements.patterns.detect import detect_store
from measurements.patterns.findings import Detection
from measurements.store.store import Store
from measurements.views.dashboard import data
from probe.errors import StorageError

logger = logging.getLogger(__name__)


class Analysis:
    """The latest :class:`Detection` of a store's rounds. Thread-safe."""

    def __init__(
        self,
        store: Store,
        *,
        check_s: float = 30.0,
        detect: Callable[[Store], Detection] = detect_store,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._detect, self._clock = store, detect, clock
        self.check_s = check_s
        """Seconds between two looks at whether the rounds changed."""
        self._lock = threading.Lock()
        self._found: Detection | None = None
        self._version: tuple[int, int, int] | None = None
        self._checked_at = -float("inf")
        self._running: threading.Thread | None = None

    def current(self) -> Detection:
        """The detection of the rounds as they were at the last look (the first call waits for it).

        Raises:
            StorageError: the store cannot be read (only when there is no detection yet).
        """
        with self._lock:
            found = self._found
            due = self._clock() - self._checked_at >= self.check_s
            if found is not None and (not due or self._running is not None):
                return found
            self._checked_at = self._clock()
        if found is None:
            return self.refresh()
        with self._store.snapshot("read rounds") as conn:
            version = data.version(conn)
        if version != self._version:
            with self._lock:
                if self._running is None:
                    self._running = threading.Thread(
                        target=self._background, name="dashboard-detect", daemon=True
                    )
                    self._running.start()
        return found

    def refresh(self) -> Detection:
        """Detect now, and keep the result.

        Raises:
            StorageError: the store cannot be read.
        """
        with self._store.snapshot("read rounds") as conn:
            version = data.version(conn)
        found = self._detect(self._store)
        with self._lock:
            self._found, self._version = found, version
        return found

    def wait(self) -> None:
        """Wait for a detection running in the background (tests and benchmarks)."""
        running = self._running
        if running is not None:
            running.join()

    def _background(self) -> None:
        try:
            self.refresh()
        except StorageError as exc:  # pages keep the previous detection; the next look retries
            logger.warning("the flags could not be recomputed: %s", exc)
        finally:
            with self._lock:
                self._running = None
