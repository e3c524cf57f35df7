"""What the patterns analysis finds: flags, events, offline periods and per-series state.

Plain frozen data, no logic (like :mod:`probe.model`): :mod:`measurements.patterns.detect` makes
them, :mod:`measurements.patterns.flagstore` stores them, the CLI and :mod:`measurements.views.report`
show them. Times are timezone-aware UTC: the ``started_at`` of the round that observed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from probe.mechanism import Layer

LAYERS: Final = tuple(layer.value for layer in Layer)
"""The layers a series watches, in the order a connection goes through them
(:class:`probe.mechanism.Layer`): ``dns``, ``tcp``, ``tls``, ``http``."""

FLAG_KINDS: Final = ("blocking_onset", "blocking_end")
EVENT_KINDS: Final = ("blocking", "multi_platform", "shutdown")
"""``blocking``: one target; ``multi_platform``: several targets at once; ``shutdown``: everything failed."""
EVENT_SCOPES: Final = ("network", "national")
"""``national``: seen on two or more networks (ASNs)."""


@dataclass(frozen=True, slots=True)
class Flag:
    """A change point of one series (target x network x layer).

    For ``blocking_onset`` the evidence runs from the first blocked measurement of the run
    that crossed the threshold to the last blocked measurement of the episode (the block may
    still be on); for ``blocking_end``, from the first unblocked measurement to the round
    that confirmed the end. The first measurement is the maximum-likelihood change point
    (:mod:`measurements.patterns.cusum`), so ``first_evidence_at`` is when the block began or ended.
    """

    kind: str
    target: str
    probe_asn: str
    probe_cc: str
    layer: str
    """One of :data:`LAYERS`."""
    mechanism: str | None
    """The most frequent mechanism label among the blocked measurements (onsets only): a
    :class:`probe.mechanism.Mechanism` value, or an older version's label as stored."""
    confirmed: str | None
    """The most frequent fingerprint name among them, if a known blockpage or DNS answer matched."""
    first_evidence_at: datetime
    last_evidence_at: datetime
    detected_at: datetime
    """The round at which the evidence crossed the threshold."""
    n_measurements: int
    """Measurements behind the flag: blocked ones for an onset, unblocked ones for an end."""
    confidence: float
    """Posterior probability of the change, from the evidence's log-likelihood ratio (0 to 1)."""
    event: int | None = None
    """Index of the :class:`Event` the flag belongs to, in :attr:`Detection.events`."""


@dataclass(frozen=True, slots=True)
class Event:
    """Flags (or shutdown rounds) that belong together: one block, one multi-platform outage, one shutdown."""

    kind: str
    """One of :data:`EVENT_KINDS`."""
    scope: str
    """One of :data:`EVENT_SCOPES`."""
    started_at: datetime
    ended_at: datetime | None
    """When the last of its series recovered; ``None`` while any is still blocked (or shut down)."""
    asns: tuple[str, ...]
    targets: tuple[str, ...]
    """Empty for a shutdown: every target failed."""
    layers: tuple[str, ...]
    mechanisms: tuple[str, ...]
    n_flags: int
    """Onset flags grouped into it (for a shutdown: rounds in which everything failed)."""


@dataclass(frozen=True, slots=True)
class OfflinePeriod:
    """A stretch without any round on a network: the probe was off. Never an outage."""

    probe_asn: str
    started_at: datetime
    """The last round before the gap."""
    ended_at: datetime
    """The first round after it."""


@dataclass(frozen=True, slots=True)
class SeriesState:
    """The latest state of one (target, network): blocked layers, and when it was last measured."""

    target: str
    probe_asn: str
    last_measured_at: datetime
    blocked: tuple[str, ...]
    """Layers with an open onset (no end yet); empty when the target is reachable."""
    mechanism: str | None
    blocked_since: datetime | None


@dataclass(frozen=True, slots=True)
class Detection:
    """Everything :func:`measurements.patterns.detect.detect` found, in a deterministic order."""

    flags: tuple[Flag, ...] = ()
    events: tuple[Event, ...] = ()
    offline: tuple[OfflinePeriod, ...] = ()
    series: tuple[SeriesState, ...] = field(default=())
    n_rounds: int = 0
    n_measurements: int = 0
    first_round_at: datetime | None = None
    last_round_at: datetime | None = None
