"""What the collector needs from a store: reports as rounds, measurements idempotent by uid.

The collector (:mod:`probe.collector.app`) never imports ``measurements`` (the arrows go one
way); the composition root (``probe collector serve``) hands it
:class:`measurements.store.reports.Reports`, which implements this protocol over the same
schema as the probe's own store. Its calls block: the application makes them in worker
threads, off its event loop.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol

from probe.model import OONIMeasurement


class Submitted(enum.StrEnum):
    """What became of one submitted measurement (the store answers with the value)."""

    STORED = "stored"
    """Stored now."""
    DUPLICATE = "duplicate"
    """A measurement with this ``measurement_uid`` was already stored: acknowledged, not stored again."""
    UNKNOWN_REPORT = "unknown_report"
    CLOSED_REPORT = "closed_report"
    """Closed by its probe, or expired (opened before the cutoff)."""


class ReportStore(Protocol):
    """The collector's store. Every call may raise :class:`~probe.errors.StorageError`."""

    def open_report(
        self,
        report_id: str,
        *,
        started_at: datetime,
        probe_asn: str,
        probe_cc: str,
        software_version: str,
    ) -> None:
        """Commit a new ``running`` round for *report_id* (ids are unique: a clash raises)."""
        ...

    def submit(self, report_id: str, measurement: OONIMeasurement, *, expired: bool = False) -> str:
        """Store *measurement* in open report *report_id*, once; a :class:`Submitted` value.

        A measurement whose uid is stored already is ``duplicate`` whatever report it is sent
        to, so a probe's re-send is acknowledged even after its report closed. *expired*: the
        report's lifetime is over, and a new measurement is refused as ``closed_report``.
        """
        ...

    def submit_alone(
        self, report_id: str, measurement: OONIMeasurement, *, started_at: datetime, software_version: str
    ) -> tuple[str, str]:
        """Open report *report_id*, store *measurement* in it and close it, in one transaction.

        Returns:
            ``("stored", report_id)``; or ``("duplicate", the report the uid is already in)``,
            and then no report is opened.
        """
        ...

    def close_report(self, report_id: str) -> bool:
        """Mark *report_id* complete (again: no change); ``False`` when unknown."""
        ...

    def expire_reports(self, opened_before: datetime) -> int:
        """Close the reports still open that were opened before *opened_before*; how many."""
        ...
