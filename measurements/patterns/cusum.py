"""A two-state Bernoulli CUSUM for one series: onset and end of blocking, with gap decay.

This is the change-point detector that ``reference/pakistan.md`` §4.1 records as OONI's
planned fix: each scored measurement adds its log-likelihood ratio "blocked" (blocked share
``p1``) against "reachable" (baseline share ``p0``) — ``ln(p1/p0)`` when it was blocked,
``ln((1-p1)/(1-p0))`` when not — to a statistic floored at 0 (Page's CUSUM). Hysteresis comes
from the two states: while reachable only an onset is looked for, while blocked only an end,
each from zero, and each crossing the threshold ``h`` (log-odds) once.

Where the change was: Page's statistic is the largest log-LR of a step over the window since
the state last changed (``S_n = max_k`` of the sum from ``k`` to ``n``), so the run behind a
flag, from where the statistic last left zero, starts at the maximum-likelihood change point
of a Bernoulli step between ``p0`` and ``p1`` (exactly so without gaps; after one, decayed
evidence weighs less). With ``p1 = 1 - p0`` (the defaults) a blocked and a clean measurement
cancel and the maximum is often shared: after a block, ``.B.B...`` is as likely to have ended
at the first clean measurement as at the third. Ties go to the shorter block (the later
onset, the earlier end): a flag claims no blocked time the evidence does not need. (Before
issue 10 rounding broke ties the other way: two random failures after an end put it four
rounds late.)

Gaps: only observed measurements update the statistic (a round without a measurement for
the series is a gap, not a zero); after a gap longer than ``gap_grace_h`` the statistic
decays with half-life ``gap_halflife_h``, so old evidence does not combine with new.

With the defaults (``p0`` 2 %, ``p1`` 98 %, ``h`` 14; each measurement then weighs ±3.9) a
fully blocked series is flagged at its 4th blocked measurement and a recovery (``h`` 10) at
its 3rd clean one (5th, when a random failure falls in between; 7th when two do, the price of
not ending a block on a two-measurement leak); 2 % random failures need four in a row
(≈ 1.6·10⁻⁷ per round) to raise a flag. A series blocked in more than about 60 % of its
measurements is flagged (75 %: after ~7 rounds); one blocked half the time is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_TIE = 1e-9
"""Log-LRs closer than this are equal: ``ln(p1/p0)`` and ``ln((1-p1)/(1-p0))`` cancel only up to rounding."""


@dataclass(frozen=True, slots=True)
class CusumParams:
    """Detector settings. Shares are per scored measurement; times in hours."""

    p0: float = 0.02
    """Blocked share of a reachable series (random failures)."""
    p1: float = 0.98
    """Blocked share of a blocked series."""
    threshold: float = 14.0
    """Log-likelihood ratio needed to flag an onset (``h``)."""
    end_threshold: float = 10.0
    """Log-likelihood ratio needed to flag an end: lower, because a block rarely leaks three
    clean measurements in a row, while random failures do cluster (so onsets need more)."""
    gap_grace_h: float = 24.0
    gap_halflife_h: float = 48.0
    prior_odds: float = 1e-3
    """Prior odds of a change at a given point, for the reported confidence."""

    def __post_init__(self) -> None:
        if not 0 < self.p0 < self.p1 < 1:
            raise ValueError(f"need 0 < p0 < p1 < 1, got p0={self.p0} p1={self.p1}")
        if min(self.threshold, self.end_threshold) <= 0 or self.gap_halflife_h <= 0 or self.gap_grace_h < 0:
            raise ValueError("threshold and gap half-life must be positive, grace non-negative")

    @property
    def w_blocked(self) -> float:
        """Log-LR added by a blocked measurement (positive)."""
        return math.log(self.p1 / self.p0)

    @property
    def w_clear(self) -> float:
        """Log-LR added by an unblocked measurement (negative)."""
        return math.log((1 - self.p1) / (1 - self.p0))

    def confidence(self, llr: float) -> float:
        """Posterior probability of the change given evidence *llr* (a logistic of the log-odds)."""
        log_odds = min(llr, 60.0) + math.log(self.prior_odds)
        return 1.0 / (1.0 + math.exp(-log_odds))


class Run:
    """The evidence of one change: its measurements, times and labels."""

    __slots__ = ("confirmed", "detected_t", "first_t", "last_t", "llr", "mechanisms", "n")

    def __init__(self, t: float) -> None:
        self.first_t = t
        self.last_t = t
        self.detected_t = t
        self.n = 0
        """Measurements of the run's direction (blocked for an onset, clear for an end)."""
        self.llr = 0.0
        self.mechanisms: dict[str, int] = {}
        self.confirmed: dict[str, int] = {}

    def add(self, t: float, w: float, mechanism: str | None = None, confirmed: str | None = None) -> None:
        self.last_t = t
        self.n += 1
        self.llr += w
        if mechanism is not None:
            self.mechanisms[mechanism] = self.mechanisms.get(mechanism, 0) + 1
        if confirmed is not None:
            self.confirmed[confirmed] = self.confirmed.get(confirmed, 0) + 1


class Detector:
    """One series' state. Call :meth:`observe` in time order; read :attr:`episodes` at the end.

    ``episodes`` holds ``(onset, end)`` runs; the last one's ``end`` is ``None`` while the
    series is still blocked. Callers may skip :meth:`observe` for an unblocked measurement
    when :attr:`idle` (it would change nothing): that keeps healthy series cheap. ``s`` is the
    running statistic: evidence for an onset while reachable, for an end while blocked.
    """

    __slots__ = (
        "_grace",
        "_h",
        "_h_end",
        "_halflife",
        "_run",
        "_wb",
        "_wc",
        "blocked",
        "episodes",
        "last_t",
        "s",
    )

    def __init__(self, params: CusumParams) -> None:
        self._wb, self._wc = params.w_blocked, params.w_clear
        self._h, self._h_end = params.threshold, params.end_threshold
        self._grace, self._halflife = params.gap_grace_h, params.gap_halflife_h
        self.s = 0.0
        self._run: Run | None = None
        self.blocked = False
        self.last_t = -math.inf
        self.episodes: list[tuple[Run, Run | None]] = []

    @property
    def idle(self) -> bool:
        """Reachable with no evidence pending: an unblocked measurement changes nothing."""
        return not self.blocked and self.s == 0.0

    def observe(
        self, t: float, blocked: bool, mechanism: str | None = None, confirmed: str | None = None
    ) -> None:
        """Add one scored measurement at time *t* (hours)."""
        gap = t - self.last_t
        self.last_t = t
        s = self.s
        if s > 0.0 and gap > self._grace:
            s *= 0.5 ** (gap / self._halflife)
        if not self.blocked:
            if blocked:
                if self._run is None:
                    self._run = Run(t)
                s += self._wb
                self._run.add(t, self._wb, mechanism, confirmed)
            elif s > 0.0:
                s += self._wc
                if s <= _TIE:  # the start ties or loses: a later one is as likely (shorter block)
                    s, self._run = 0.0, None
                elif self._run is not None:
                    self._run.llr += self._wc
            if s > self._h and self._run is not None:
                self._run.detected_t, self._run.llr = t, s
                self.episodes.append((self._run, None))
                self.blocked, s, self._run = True, 0.0, None
        else:
            onset = self.episodes[-1][0]
            if blocked:
                onset.add(t, self._wb, mechanism, confirmed)
                if self._run is not None:
                    s -= self._wb
                    if s < -_TIE:  # a new low: the block is on, an end starts after it
                        s, self._run = 0.0, None
                    elif s <= _TIE:  # a tie: keep the earlier end (shorter block)
                        s = 0.0
            else:
                if self._run is None:
                    self._run = Run(t)
                s -= self._wc
                self._run.add(t, -self._wc)
                if s > self._h_end:
                    self._run.detected_t, self._run.llr = t, s
                    self.episodes[-1] = (onset, self._run)
                    self.blocked, s, self._run = False, 0.0, None
        self.s = s
