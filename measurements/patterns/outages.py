"""Round heartbeats → probe-offline periods and network shutdowns.

Three states are told apart, per network (ASN):

* **probe offline** — no round at all for longer than the usual interval. The probe (or the
  volunteer's machine) was off; nothing is known about the network, so this is never an
  outage. Reported as :class:`~measurements.patterns.findings.OfflinePeriod`.
* **network shutdown** — rounds ran and everything failed, the control vantage included
  (``network_up`` false, or every measurement failed while the control was unreachable),
  for at least ``min_rounds`` rounds in a row. One :class:`~measurements.patterns.findings.Event`
  per shutdown (``national`` when several networks were shut down at once), whatever the
  number of targets.
* **targeted blocking** — some targets failed while others (and the control) worked: left
  to the per-series detector in :mod:`measurements.patterns.detect`, which skips all-failed rounds
  so that a shutdown never reads as many separate blocks.

From one probe a shutdown cannot be told from the volunteer's own link going down; several
probes on the same network (aggregated in PostgreSQL) tell them apart.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from measurements.patterns.findings import Event, OfflinePeriod


class RoundBeat(NamedTuple):
    """A round's heartbeat, as read from the ``rounds`` table."""

    id: int
    started_at: datetime
    probe_asn: str
    probe_cc: str
    status: str
    n_measurements: int
    n_failed: int
    network_up: bool | None
    control_reachable: bool | None


@dataclass(frozen=True, slots=True)
class OutageParams:
    """Outage settings."""

    offline_factor: float = 1.75
    """A gap longer than this many usual intervals between rounds means the probe was off."""
    min_rounds: int = 2
    """All-failed rounds in a row needed to call a shutdown (one is a blip)."""


def all_failed(beat: RoundBeat) -> bool:
    """Did everything fail in this round, including the control vantage?"""
    if beat.network_up is False:
        return True
    return 0 < beat.n_measurements <= beat.n_failed and beat.control_reachable is not True


def offline_periods(beats: Sequence[RoundBeat], params: OutageParams) -> list[OfflinePeriod]:
    """Gaps without rounds on one network's time-ordered *beats*."""
    times = [b.started_at for b in beats]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    if not gaps:
        return []
    limit = params.offline_factor * statistics.median(gaps)
    asn = beats[0].probe_asn
    return [
        OfflinePeriod(asn, times[i], times[i + 1]) for i, gap in enumerate(gaps) if gap > limit and gap > 0
    ]


def shutdown_runs(beats: Sequence[RoundBeat], params: OutageParams) -> list[tuple[int, int]]:
    """``(first, stop)`` index ranges of one network's all-failed runs long enough to be shutdowns."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, beat in enumerate([*beats, None]):
        failed = beat is not None and all_failed(beat)
        if failed and start is None:
            start = i
        elif not failed and start is not None:
            if i - start >= params.min_rounds:
                runs.append((start, i))
            start = None
    return runs


def shutdown_events(by_asn: dict[str, list[RoundBeat]], params: OutageParams) -> list[Event]:
    """Shutdown events: each network's all-failed runs, merged across networks when they overlap."""
    spans: list[tuple[datetime, datetime | None, str, int]] = []
    for asn, beats in by_asn.items():
        for first, stop in shutdown_runs(beats, params):
            ended = beats[stop].started_at if stop < len(beats) else None
            spans.append((beats[first].started_at, ended, asn, stop - first))
    spans.sort(key=lambda s: (s[0], s[2]))
    events: list[Event] = []
    group: list[tuple[datetime, datetime | None, str, int]] = []
    for span in spans:
        if group and not _overlaps(group, span[0]):
            events.append(_shutdown(group))
            group = []
        group.append(span)
    if group:
        events.append(_shutdown(group))
    return events


def _overlaps(group: list[tuple[datetime, datetime | None, str, int]], start: datetime) -> bool:
    return any(end is None or start < end for _, end, _, _ in group)


def _shutdown(group: list[tuple[datetime, datetime | None, str, int]]) -> Event:
    ends = [end for _, end, _, _ in group]
    asns = tuple(sorted({asn for _, _, asn, _ in group}))
    return Event(
        kind="shutdown",
        scope="national" if len(asns) > 1 else "network",
        started_at=min(start for start, _, _, _ in group),
        ended_at=None if None in ends else max(e for e in ends if e is not None),
        asns=asns,
        targets=(),
        layers=(),
        mechanisms=(),
        n_flags=sum(n for _, _, _, n in group),
    )
