"""The one time format people and machines read: ISO 8601, UTC, whole seconds, ``Z``.

``2024-02-17T09:00:00Z`` in CSV (formatted in SQL by :mod:`measurements.store.export`, to the same
text), in every ``--json`` output and in the tables people read. OONI's own fields keep
OONI's ``YYYY-MM-DD hh:mm:ss`` (:data:`probe.model.OONI_TIME_FORMAT`) inside the OONI JSON.

Pure (no I/O, no network imports), so the data side (``measurements``) may use it too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, overload

ISO_UTC_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
""":func:`~datetime.datetime.strftime` format of :func:`iso_utc`."""


@overload
def iso_utc(when: datetime) -> str: ...
@overload
def iso_utc(when: None) -> None: ...
def iso_utc(when: datetime | None) -> str | None:
    """*when* as ``YYYY-MM-DDThh:mm:ssZ`` in UTC (sub-seconds dropped); ``None`` stays ``None``.

    A naive *when* is taken to be UTC already (the store's convention).
    """
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime(ISO_UTC_FORMAT)


def parse_iso_utc(text: str) -> datetime:
    """The aware UTC instant of ``YYYY-MM-DDThh:mm:ssZ`` text (what :func:`iso_utc` writes).

    Raises:
        ValueError: *text* is not in that format.
    """
    return datetime.strptime(text, ISO_UTC_FORMAT).replace(tzinfo=UTC)
