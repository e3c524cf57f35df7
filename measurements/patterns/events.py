"""Group blocking onsets into events: one outage of several platforms, one block rolled out ISP by ISP.

OONI's documented weakness (``reference/pakistan.md`` §4.1) is one alert per series: a
national event of four platforms on ten networks is forty alerts. Here onsets are clustered
(single linkage) when

* they started within ``window_h`` of each other, whatever the target or network — several
  targets at once is a *multi-platform* event (the 20 January 2024 pattern), or
* they are the same target within ``rollout_h`` — a block that reaches network after
  network, or moves from one layer to another, is one event.

An event seen on two or more networks is ``national``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from measurements.patterns.findings import LAYERS, Event, Flag


@dataclass(frozen=True, slots=True)
class EventParams:
    """Grouping windows, in hours."""

    window_h: float = 3.0
    rollout_h: float = 48.0


def group_onsets(
    onsets: Sequence[Flag], ended: Sequence[datetime | None], params: EventParams
) -> tuple[list[Event], list[int]]:
    """Cluster *onsets* (``ended[i]``: when onset *i*'s series recovered, ``None`` if not yet).

    Returns:
        The events in time order, and for each onset the index of its event.
    """
    parent = list(range(len(onsets)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    order = sorted(range(len(onsets)), key=lambda i: onsets[i].first_evidence_at)
    window, rollout = timedelta(hours=params.window_h), timedelta(hours=params.rollout_h)
    for pos, i in enumerate(order):
        start = onsets[i].first_evidence_at
        for j in order[pos + 1 :]:
            delta = onsets[j].first_evidence_at - start
            if delta > rollout:
                break
            if delta <= window or onsets[j].target == onsets[i].target:
                union(i, j)
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(find(i), []).append(i)
    clusters = sorted(groups.values(), key=lambda g: (onsets[g[0]].first_evidence_at, g[0]))
    events: list[Event] = []
    assignment = [0] * len(onsets)
    for n, members in enumerate(clusters):
        for i in members:
            assignment[i] = n
        events.append(_event([onsets[i] for i in members], [ended[i] for i in members]))
    return events, assignment


def _event(flags: list[Flag], ended: list[datetime | None]) -> Event:
    targets = tuple(sorted({f.target for f in flags}))
    asns = tuple(sorted({f.probe_asn for f in flags}))
    mechanisms = Counter(f.mechanism for f in flags if f.mechanism)
    return Event(
        kind="multi_platform" if len(targets) > 1 else "blocking",
        scope="national" if len(asns) > 1 else "network",
        started_at=min(f.first_evidence_at for f in flags),
        ended_at=None if None in ended else max(e for e in ended if e is not None),
        asns=asns,
        targets=targets,
        layers=tuple(layer for layer in LAYERS if any(f.layer == layer for f in flags)),
        mechanisms=tuple(m for m, _ in sorted(mechanisms.items(), key=lambda kv: (-kv[1], kv[0]))),
        n_flags=len(flags),
    )
