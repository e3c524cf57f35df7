"""Store and read back flags and events (the ``flags`` and ``events`` tables).

Flags are derived data: :func:`save` replaces the whole set in one transaction, with ids
given by position, so storing the same detection twice leaves identical rows — recomputing
is idempotent, and a reader never sees half of a run. On PostgreSQL the tables are locked
for the swap, so two detection runs at once store one after the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, or_, select, text

from measurements.patterns.findings import Detection, Event, Flag
from measurements.store.queries import normalize_asn
from measurements.store.tables import EventRecord, FlagRecord

if TYPE_CHECKING:
    from measurements.store.store import Store

_FLAG_FIELDS = (
    "kind", "target", "probe_asn", "probe_cc", "layer", "mechanism", "confirmed", "first_evidence_at",
    "last_evidence_at", "detected_at", "n_measurements", "confidence",
)  # fmt: skip


def save(store: Store, found: Detection) -> None:
    """Replace the stored flags and events with *found*'s.

    Raises:
        StorageError: the database cannot be written.
    """
    events = [_event_row(i + 1, e) for i, e in enumerate(found.events)]
    flags = [
        {"id": i + 1, **{k: getattr(f, k) for k in _FLAG_FIELDS}, "event_id": _event_id(f.event)}
        for i, f in enumerate(found.flags)
    ]
    # One write transaction: readers see the old flags or the new ones, never a mix.
    with store.transaction("store flags") as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE flags, events IN EXCLUSIVE MODE"))
        conn.execute(delete(FlagRecord))
        conn.execute(delete(EventRecord))
        if events:
            conn.execute(insert(EventRecord), events)
        if flags:
            conn.execute(insert(FlagRecord), flags)


def load_flags(
    store: Store,
    *,
    since: datetime | None = None,
    target: str | None = None,
    asn: str | int | None = None,
) -> list[Flag]:
    """Stored flags in time order, optionally only those with evidence since *since*, for *target*, on *asn*.

    Raises:
        ValueError: *asn* is not an ASN.
        StorageError: the database cannot be read.
    """
    f = FlagRecord
    stmt = select(*(getattr(f, k) for k in _FLAG_FIELDS), f.event_id).order_by(f.id)
    if since is not None:
        stmt = stmt.where(f.last_evidence_at >= since)
    if target is not None:
        stmt = stmt.where(f.target == target)
    if asn is not None:
        stmt = stmt.where(f.probe_asn == normalize_asn(asn))
    rows = list(store.stream(stmt))
    return [
        Flag(**dict(zip(_FLAG_FIELDS, row[:-1], strict=True)), event=None if row[-1] is None else row[-1] - 1)
        for row in rows
    ]


def load_events(store: Store, *, since: datetime | None = None) -> list[Event]:
    """Stored events in time order (all of them, or those still on or ended since *since*).

    Event numbers in :attr:`Flag.event` index the *unfiltered* list.

    Raises:
        StorageError: the database cannot be read.
    """
    e = EventRecord
    stmt = select(
        e.kind, e.scope, e.started_at, e.ended_at, e.asns, e.targets, e.layers, e.mechanisms, e.n_flags
    ).order_by(e.id)
    if since is not None:
        stmt = stmt.where(or_(e.ended_at.is_(None), e.ended_at >= since))
    return [
        Event(
            kind=kind, scope=scope, started_at=started, ended_at=ended, asns=_split(asns, " "),
            targets=_split(targets, "\n"), layers=_split(layers, " "), mechanisms=_split(mechs, " "),
            n_flags=n,
        )
        for kind, scope, started, ended, asns, targets, layers, mechs, n in store.stream(stmt)
    ]  # fmt: skip


def _event_row(id_: int, e: Event) -> dict[str, Any]:
    return {
        "id": id_, "kind": e.kind, "scope": e.scope, "started_at": e.started_at, "ended_at": e.ended_at,
        "asns": " ".join(e.asns), "targets": "\n".join(e.targets), "layers": " ".join(e.layers),
        "mechanisms": " ".join(e.mechanisms), "n_flags": e.n_flags,
    }  # fmt: skip


def _event_id(index: int | None) -> int | None:
    return None if index is None else index + 1


def _split(text_: str, sep: str) -> tuple[str, ...]:
    return tuple(part for part in text_.split(sep) if part)
