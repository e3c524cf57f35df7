"""What a page shows: the time range, network, target, category and outcome filters.

The same :class:`Filters` come from a page's query string (:meth:`Filters.parse`), narrow every
query of :mod:`.data`, and go back into the links and the downloads (:meth:`Filters.query`), so a
CSV or JSONL download holds exactly what the page shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlencode

from measurements.store.queries import normalize_asn

OUTCOME_FILTERS: Final = (
    "blocked",
    "blocked.confirmed",
    "blocked.anomaly",
    "shutdown",
    "reachable",
    "down",
    "server.refusal",
    "no_verdict",
)
"""``outcome=``: an outcome's value, or a prefix of several (``blocked``, ``no_verdict``)."""


class FilterError(ValueError):
    """A query parameter that does not parse; its message names the parameter."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What to show; ``None`` everywhere is everything."""

    since: datetime | None = None
    """From this instant on (a date means its 00:00 UTC)."""
    until: datetime | None = None
    """Before this instant (a date means the end of that day: the day is included)."""
    asn: str | None = None
    target: str | None = None
    category: str | None = None
    outcome: str | None = None
    """One of :data:`OUTCOME_FILTERS`."""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Filters:
        """The filters of a query string; empty values mean no filter.

        Raises:
            FilterError: a value does not parse (the message names the parameter).
        """

        def get(name: str) -> str | None:
            value = params.get(name, "").strip()
            return value or None

        asn = get("asn")
        if asn is not None:
            try:
                asn = normalize_asn(asn)
            except ValueError as exc:
                raise FilterError(f"asn: {exc}") from None
        outcome = get("outcome")
        if outcome is not None and outcome not in OUTCOME_FILTERS:
            raise FilterError(f"outcome: expected one of {', '.join(OUTCOME_FILTERS)}")
        return cls(
            since=_instant("since", get("since"), end_of_day=False),
            until=_instant("until", get("until"), end_of_day=True),
            asn=asn,
            target=get("target"),
            category=get("category"),
            outcome=outcome,
        )

    def query(self, **changes: object) -> str:
        """The query string (without ``?``) of these filters with *changes*; ``""`` when none."""
        shown = replace(self, **changes) if changes else self  # type: ignore[arg-type]  # names checked by replace
        pairs = [(f.name, _text(getattr(shown, f.name))) for f in fields(shown)]
        return urlencode([(k, v) for k, v in pairs if v])

    @property
    def any(self) -> bool:
        """Whether any filter is set."""
        return any(getattr(self, f.name) is not None for f in fields(self))


def _instant(name: str, text: str | None, *, end_of_day: bool) -> datetime | None:
    if text is None:
        return None
    for pattern, day in (("%Y-%m-%d", True), ("%Y-%m-%dT%H:%M", False), ("%Y-%m-%dT%H:%M:%S", False)):
        try:
            value = datetime.strptime(text.removesuffix("Z"), pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
        return value + timedelta(days=1) if day and end_of_day else value
    raise FilterError(f"{name}: expected a date (2024-02-17) or a UTC time (2024-02-17T09:00)")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    return str(value)
