"""The upload state the uploader reads and records, and the ledger interface it goes through.

The uploader (:func:`probe.upload.upload_pending`) keeps no state itself: it asks an
:class:`UploadLedger` what is due and tells it what the collector said.
:class:`measurements.store.uploads.StoreUploads` implements the ledger over the store's
``uploads`` table. The uploader never imports ``measurements``; the composition roots
(``probe upload``, ``probe daemon``) build the ledger over the real store and hand it in.
Arrows go one way, as for :mod:`probe.rounds.roundstore`: ``measurements`` reads this module,
this module reads nothing of ``measurements`` (nor of the network side).

What crosses the interface is defined here, beside it: a measurement to send (:class:`Due`),
where a run's paging stands (:class:`Cursor`), and what came of an attempt
(:class:`Uploaded`, :class:`Failed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["Cursor", "Due", "Failed", "UploadLedger", "Uploaded"]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a run's paging stands: the last due measurement it was handed."""

    measured_at: datetime
    measurement_id: int


@dataclass(frozen=True, slots=True)
class Due:
    """A measurement to send: its stored OONI JSON and where its upload stands."""

    measurement_id: int
    measurement_uid: str
    round_id: int
    test_name: str
    measured_at: datetime
    body: str
    attempts: int
    """Failed attempts so far (0: pending)."""

    @property
    def cursor(self) -> Cursor:
        """The :class:`Cursor` just past this measurement."""
        return Cursor(self.measured_at, self.measurement_id)


@dataclass(frozen=True, slots=True)
class Uploaded:
    """The collector has the measurement: in *report_id*, as *collector_uid*."""

    measurement_id: int
    report_id: str
    collector_uid: str


@dataclass(frozen=True, slots=True)
class Failed:
    """An attempt failed: the attempts so far (this one included), why, and when to try again."""

    measurement_id: int
    attempts: int
    error: str
    next_attempt_at: datetime
    report_id: str | None = None
    """The report the collector refused it in; ``None``: it never reached the collector (the
    collector could not be reached, or failed), so :meth:`UploadLedger.lift_waits` applies to it."""


class UploadLedger(Protocol):
    """Where the upload state lives: what is due, and what the collector said of each attempt.

    Every call is blocking and short (the uploader runs it in a worker thread, off the event
    loop) and raises :class:`~probe.errors.StorageError` when the state cannot be read or written.
    """

    def due(
        self, *, now: datetime, limit: int, after: Cursor | None = None, retry_all: bool = False
    ) -> list[Due]:
        """Up to *limit* measurements to send now, oldest first (``measured_at``, then id), after *after*.

        Only measurements of finished rounds of this probe are due: never pending ones of a round
        still running, nor those of rounds received from other probes.

        Args:
            now: failed ones whose ``next_attempt_at`` is at or before it are due again.
            limit: at most this many.
            after: only measurements after this one in upload order (a run's paging).
            retry_all: failed ones are due whatever their back-off says.

        Raises:
            StorageError: the state cannot be read.
        """
        ...

    def mark_uploaded(self, done: Sequence[Uploaded], *, now: datetime) -> None:
        """Record that the collector has each of *done* (at once: all or none).

        Raises:
            StorageError: the state cannot be written.
        """
        ...

    def mark_failed(self, failed: Sequence[Failed], *, now: datetime) -> None:
        """Record failed attempts (at once); a measurement already uploaded stays so.

        Raises:
            StorageError: the state cannot be written.
        """
        ...

    def lift_waits(self, *, now: datetime) -> int:
        """Make due now every failed measurement that never reached the collector; return how many.

        Called once the collector answers again: their waits were the collector's, not theirs.
        Those the collector refused (a report id) keep theirs.

        Raises:
            StorageError: the state cannot be written.
        """
        ...
