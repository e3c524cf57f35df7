"""Scoring detection against the synthetic truth: which flag matches which scripted block, and how far off.

Shared by ``test_backtest.py``, ``test_sweep.py`` and ``bench/patterns.py``. Distances are in
*rounds of the network* (the probe's clock), not hours: offline gaps and shutdowns have no
rounds, so they do not count.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from measurements.patterns.detect import detect
from measurements.patterns.findings import Detection, Flag
from measurements.patterns.outages import RoundBeat
from measurements.patterns.synthetic import SyntheticConfig, Truth, materialize, truth


@dataclass(frozen=True, slots=True)
class Timing:
    """One scripted onset or end and the flag that matched it."""

    seed: int
    kind: str
    """``blocking_onset`` or ``blocking_end``."""
    target: str
    probe_asn: str
    at: datetime
    """The scripted change (the first blocked, or first unblocked, hour)."""
    error: int | None
    """Rounds from the change to the flag's ``first_evidence_at`` (< 0: early; ``None``: no flag)."""
    delay: int | None
    """Rounds of the network that started in [scripted change, ``detected_at``] (the 6-round budget)."""

    def __str__(self) -> str:
        host = self.target.split("/")[2]
        return f"seed {self.seed} {self.kind} {host} {self.probe_asn} {self.at:%m-%d %H:%M}: " + (
            "no flag"
            if self.error is None
            else f"estimate {self.error:+d} rounds, detected after {self.delay}"
        )


class Backtest:
    """Detection over one synthetic configuration, in memory, with the round clock of each network."""

    def __init__(self, config: SyntheticConfig) -> None:
        beats, rows, targets = materialize(config)
        self.seed = config.seed
        self.found: Detection = detect(beats, rows, targets)
        self.truth: Truth = truth(config)
        self.times: dict[str, list[datetime]] = {}
        for b in sorted(beats, key=lambda b: b.started_at):
            self.times.setdefault(b.probe_asn, []).append(b.started_at)
        self.beats: list[RoundBeat] = beats

    def rounds_between(self, asn: str, start: datetime, end: datetime) -> int:
        """Rounds of *asn* that started in [start, end]."""
        times = self.times[asn]
        return bisect.bisect_right(times, end) - bisect.bisect_left(times, start)

    def rounds_from(self, asn: str, start: datetime, to: datetime) -> int:
        """Rounds of *asn* from *start* to *to*: 0 for the first round at or after *start*, < 0 before."""
        times = self.times[asn]
        return bisect.bisect_left(times, to) - bisect.bisect_left(times, start)

    def flags(self, kind: str, target: str, asn: str, near: datetime) -> list[Flag]:
        """The *kind* flags of (target, asn) whose evidence starts within three hours of *near*."""
        return [
            f
            for f in self.found.flags
            if (f.kind, f.target, f.probe_asn) == (kind, target, asn)
            and abs(f.first_evidence_at - near) <= timedelta(hours=3)
        ]

    def timings(self) -> tuple[list[Timing], list[Flag]]:
        """Each scripted onset and end with its nearest flag (same series and layer), and the flags left.

        A flag matches at most one scripted change, so a block found twice, or a flag on a
        healthy series, is left over.
        """
        pool: dict[tuple[str, str, str, str], list[Flag]] = {}
        for f in self.found.flags:
            pool.setdefault((f.kind, f.target, f.probe_asn, f.layer), []).append(f)
        out: list[Timing] = []
        for e in self.truth.blocks:
            changes: Iterable[tuple[str, datetime | None]] = (
                ("blocking_onset", e.start),
                ("blocking_end", e.end),
            )
            for kind, at in changes:
                if at is None:
                    continue
                candidates = pool.get((kind, e.target, e.probe_asn, e.layer), [])
                if not candidates:
                    out.append(Timing(self.seed, kind, e.target, e.probe_asn, at, None, None))
                    continue
                flag = min(candidates, key=lambda f: abs(f.first_evidence_at - at))
                candidates.remove(flag)
                error = self.rounds_from(e.probe_asn, at, flag.first_evidence_at)
                delay = self.rounds_between(e.probe_asn, at, flag.detected_at)
                out.append(Timing(self.seed, kind, e.target, e.probe_asn, at, error, delay))
        return out, [f for left in pool.values() for f in left]


def healthy(seed: int, *, days: int = 60) -> SyntheticConfig:
    """No blocks, no outages, no shutdown: only the random failures (2 %) and offline gaps."""
    return SyntheticConfig(
        seed=seed, days=days, x_networks=(), outages=(), shutdown=(0, 0, 0), offline_gaps=3
    )
