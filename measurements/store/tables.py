"""The database tables: SQLAlchemy 2.0 typed declarative models (what Alembic migrates).

Seven tables:

* ``rounds`` — one row per round, written ``running`` when it starts and ``complete`` in the
  same transaction as its measurements; a row its process left ``running`` (a crash) becomes
  ``interrupted`` at the next start of the installation that owns it (``installation``).
  The heartbeat columns (``network_up``, ``control_reachable``, ``n_failed``, …) let the
  analysis tell "the probe was offline" (no round at all) from "the network was shut down"
  (rounds ran, and nothing could be reached).
* ``measurements`` — one row per measured URL: summary columns (indexed for the time-series
  queries of ``patterns``) beside ``body``, the full measurement as OONI JSON text.
* ``targets`` — the URLs ever measured, with their test-list metadata (citizenlab columns).
* ``networks`` — the (ASN, country) pairs the probe measured from, with the AS name.
* ``uploads`` — the upload state of each measurement the uploader has tried to send to a
  collector (no row: pending).
* ``flags`` and ``events`` — what :mod:`measurements.patterns.detect` found, replaced whole on
  each detection run (derived data: it can always be recomputed from the rest).

The typed rows the store hands back are in :mod:`measurements.store.rows`, the SELECTs that
produce them in :mod:`measurements.store.queries`.

Privacy: there is deliberately no column for the volunteer's IP address; the network is
recorded as ASN + country only, and the stored JSON carries OONI's ``127.0.0.1`` marker.

Times are stored as naive UTC (the portable subset of SQLite and PostgreSQL) and come back
as timezone-aware UTC :class:`~datetime.datetime` objects (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROUND_STATUSES: Final = ("running", "complete", "interrupted")
BLOCKING_VALUES: Final = ("false", "dns", "tcp_ip", "http-failure", "http-diff")
"""The text stored in ``measurements.blocking``; ``NULL`` is OONI's ``null`` (undecided)."""

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Stable constraint names, so later Alembic migrations can address them on both backends."""


class UTCDateTime(TypeDecorator[datetime]):
    """A UTC instant: stored naive, returned timezone-aware.

    A naive value given to the database is taken to be UTC already.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """The declarative base; its ``metadata`` is what Alembic migrates."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Round(Base):
    """One round of measurements, and its heartbeat."""

    __tablename__ = "rounds"
    __table_args__ = (
        CheckConstraint(f"status IN {ROUND_STATUSES!r}", name="status"),
        Index(None, "started_at"),
        Index(None, "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the round was committed; ``NULL`` while running and for interrupted rounds."""
    status: Mapped[str] = mapped_column(String(16), default="running")
    probe_asn: Mapped[str] = mapped_column(String(16), default="AS0")
    probe_cc: Mapped[str] = mapped_column(String(2), default="ZZ")
    software_version: Mapped[str] = mapped_column(Text, default="")
    config_digest: Mapped[str] = mapped_column(Text, default="")
    n_targets: Mapped[int] = mapped_column(Integer, default=0)
    """Targets the round set out to measure."""
    n_measurements: Mapped[int] = mapped_column(Integer, default=0)
    """Measurements stored (targets whose measurement could not run are in ``n_errors``)."""
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    """Stored measurements that were blocked or failed (see :func:`measurements.store.summary.is_failed`)."""
    n_errors: Mapped[int] = mapped_column(Integer, default=0)
    """Targets that produced no measurement at all (a bug in the probe, not a network outcome)."""
    network_up: Mapped[bool | None] = mapped_column(Boolean)
    """Could the probe reach anything at all (any TCP connect succeeded)? ``NULL``: unknown."""
    control_reachable: Mapped[bool | None] = mapped_column(Boolean)
    """Did the control vantage answer? ``NULL``: no control configured, or unknown."""
    report_id: Mapped[str | None] = mapped_column(String(128), unique=True, index=True)
    """The OONI report this round is, on a collector (one round per report a probe opens);
    ``NULL`` for a probe's own rounds."""
    installation: Mapped[str | None] = mapped_column(String(36))
    """The :class:`~measurements.store.store.Installation` that began the round (a random UUID,
    never exported); only it cleans the round up after a crash. ``NULL``: begun before
    revision 0003."""


class Network(Base):
    """A network the probe measured from: ASN and country, never an address."""

    __tablename__ = "networks"

    asn: Mapped[str] = mapped_column(String(16), primary_key=True)
    """OONI style, ``AS1234`` (``AS0`` when unknown)."""
    cc: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Target(Base):
    """A URL ever measured, with its citizenlab test-list metadata."""

    __tablename__ = "targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text, unique=True)
    category_code: Mapped[str] = mapped_column(Text, default="")
    category_description: Mapped[str] = mapped_column(Text, default="")
    # A server default (unlike the older columns): revision 0004 added them to existing rows.
    date_added: Mapped[str] = mapped_column(Text, default="", server_default="")
    """As the test list has it (citizenlab: ``YYYY-MM-DD``); text, never parsed."""
    source: Mapped[str] = mapped_column(Text, default="", server_default="")
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MeasurementRecord(Base):
    """One stored measurement: summary columns beside the full OONI JSON."""

    __tablename__ = "measurements"
    __table_args__ = (
        # One series per target and network: what patterns scans, and (index-only) the latest
        # measurement of each for failing_query. A target's series over all networks uses its prefix.
        Index(None, "target_id", "probe_asn", "measured_at"),
        Index(None, "probe_asn", "measured_at"),
        Index(None, "measured_at"),
        Index(None, "mechanism"),
        Index(None, "outcome"),
        Index(None, "round_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    measurement_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    """OONI's ``measurement_uid``: the one name of a measurement's id in JSONL, CSV, the
    database and ``--json`` (rows stored before revision 0004 keep their UUID4)."""
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id"))
    test_name: Mapped[str] = mapped_column(
        String(64), default="web_connectivity", server_default="web_connectivity", index=True
    )
    """OONI's ``test_name`` (``web_connectivity``, ``telegram``, ``tor``, …)."""
    input: Mapped[str] = mapped_column(Text)
    """The URL measured (OONI ``input``)."""
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """OONI ``measurement_start_time``."""
    runtime_s: Mapped[float] = mapped_column(Float)
    probe_asn: Mapped[str] = mapped_column(String(16))
    probe_cc: Mapped[str] = mapped_column(String(2))
    blocking: Mapped[str | None] = mapped_column(String(16))
    """One of :data:`BLOCKING_VALUES`, or ``NULL``."""
    accessible: Mapped[bool | None] = mapped_column(Boolean)
    mechanism: Mapped[str | None] = mapped_column(Text)
    confirmed: Mapped[str | None] = mapped_column(Text)
    """The name of the fingerprint that matched, if any."""
    dns_consistency: Mapped[str | None] = mapped_column(String(16))
    dns_failure: Mapped[str | None] = mapped_column(Text)
    tcp_failure: Mapped[str | None] = mapped_column(Text)
    tls_failure: Mapped[str | None] = mapped_column(Text)
    http_failure: Mapped[str | None] = mapped_column(Text)
    control_failure: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    """What people read (:class:`probe.outcome.Outcome`'s value), derived once, when the round
    is stored, from the columns above and the round's ``network_up``
    (:func:`measurements.store.summary.outcome_column`)."""
    body: Mapped[str] = mapped_column(Text)
    """The whole measurement, OONI JSON, exactly as :func:`probe.serialize.to_json` wrote it."""


UPLOAD_STATES: Final = ("uploaded", "failed")


class UploadRecord(Base):
    """Where one measurement stands with the collector; no row: not tried yet (pending)."""

    __tablename__ = "uploads"
    __table_args__ = (
        CheckConstraint(f"state IN {UPLOAD_STATES!r}", name="state"),
        Index(None, "state", "next_attempt_at"),
    )

    measurement_id: Mapped[int] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    """One of :data:`UPLOAD_STATES`."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    """Why the last attempt failed (a failure string, never an address); ``NULL`` once uploaded."""
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When a failed upload may be tried again (back-off); ``NULL`` once uploaded."""
    report_id: Mapped[str | None] = mapped_column(String(128))
    """The collector's report the measurement went into."""
    collector_uid: Mapped[str | None] = mapped_column(String(64))
    """The ``measurement_uid`` the collector acknowledged."""


class EventRecord(Base):
    """A stored :class:`~measurements.patterns.findings.Event`; rewritten whole by each detection run."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("kind IN ('blocking', 'multi_platform', 'shutdown')", name="kind"),
        CheckConstraint("scope IN ('network', 'national')", name="scope"),
        Index(None, "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    """Its position in time order, from 1."""
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    asns: Mapped[str] = mapped_column(Text)
    """Space-separated ASNs."""
    targets: Mapped[str] = mapped_column(Text)
    """Newline-separated URLs (empty for a shutdown)."""
    layers: Mapped[str] = mapped_column(Text)
    mechanisms: Mapped[str] = mapped_column(Text)
    n_flags: Mapped[int] = mapped_column(Integer)


class FlagRecord(Base):
    """A stored :class:`~measurements.patterns.findings.Flag`; rewritten whole by each detection run."""

    __tablename__ = "flags"
    __table_args__ = (
        CheckConstraint("kind IN ('blocking_onset', 'blocking_end')", name="kind"),
        Index(None, "first_evidence_at"),
        Index(None, "target", "probe_asn"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    """Its position in time order, from 1: the same data always gives the same ids."""
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    probe_asn: Mapped[str] = mapped_column(String(16))
    probe_cc: Mapped[str] = mapped_column(String(2))
    layer: Mapped[str] = mapped_column(String(8))
    mechanism: Mapped[str | None] = mapped_column(Text)
    confirmed: Mapped[str | None] = mapped_column(Text)
    first_evidence_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_evidence_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    n_measurements: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
