"""Click parameter types that several commands share: points in time and networks.

``--since``/``--until`` take the same forms everywhere (``probe export``, ``probe flags``,
``probe report``): an ISO 8601 date or date-time — ``2024-01-20``, ``2024-01-20T14:00``,
``2024-01-20 14:00:30``, ``2024-01-20T14:00Z``, ``2024-01-20T19:00+05:00``; without an offset it
is UTC — or an age before now: ``36h``, ``7d``, ``2w``. Anything else (``yesterday``, the ISO
basic form ``20240120``, which Python accepts but people misread) is refused, and so is a
time that falls outside the years 1 to 9999 once in UTC (``9999-12-31T23:00-02:00``, ``99999999d``),
with :class:`click.BadParameter`: one line, exit status 2.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

# re.ASCII: \d is 0-9 only, not every script's digits.
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?", re.ASCII)
_AGE = re.compile(r"(\d{1,20})([hdw])", re.ASCII)  # a long one is refused as out of range
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class When(click.ParamType[datetime]):
    """A point in time as a UTC ``datetime``: ISO 8601, or an age (``36h``, ``7d``, ``2w``) before now."""

    name = "WHEN"

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now
        """Fixed "now" for ages (tests); ``None``: the time of conversion."""

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        age = _AGE.fullmatch(text)
        if age:
            amount, unit = age.groups()
            try:
                return (self._now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
            except OverflowError:
                self.fail(f"{value!r} is out of range: before 0001-01-01")
        try:
            if not _ISO.fullmatch(text):
                raise ValueError
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 date or time, nor an age"
                " (e.g. 2024-01-20, 2024-01-20T14:00Z or 7d)"
            )
        if when.tzinfo is None:
            return when.replace(tzinfo=UTC)
        try:
            return when.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-02:00 is in year 10000 in UTC
            side = "after 9999-12-31" if when.year == 9999 else "before 0001-01-01"
            self.fail(f"{value!r} is out of range: in UTC it is {side}")


class Asn(click.ParamType[str]):
    """A network: ``AS1234`` or ``1234``, normalised to ``AS1234``."""

    name = "ASN"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            from measurements.store.queries import normalize_asn  # the store's, loaded on use

            return normalize_asn(str(value))
        except ValueError as exc:
            self.fail(str(exc))
