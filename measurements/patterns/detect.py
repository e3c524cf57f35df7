"""Time-series flags: onset and end of blocking per target x network x layer, outages, events.

:func:`detect` is the whole analysis over plain rows (the store's, or
:mod:`measurements.patterns.synthetic`'s); :func:`detect_store` feeds it from a
:class:`~measurements.store.store.Store` in one streaming pass; :func:`update_flags` also stores
the result (:mod:`measurements.patterns.flagstore`), replacing what an earlier run stored — detection
is a pure function of the stored rounds, so re-running it gives the same flags.

Series: one per (target, ASN, layer) on the grid of the network's rounds. Each measurement
is scored at the layers it reached: blocked at its mechanism's layer, unblocked at the
layers before it, and *masked* (no observation) after it — a DNS block says nothing about
TLS, so it must not read as TLS unblocking. Measurements without a verdict (``blocking``
null: no control) and rounds in which everything failed (a shutdown, see
:mod:`measurements.patterns.outages`) are not scored: gaps, not zeros. Each layer series runs a
:class:`~measurements.patterns.cusum.Detector`.

Cost: one pass, O(1) per measurement, memory O(series); a healthy series costs a dict
lookup and four attribute checks per measurement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from measurements.patterns.cusum import CusumParams, Detector, Run
from measurements.patterns.events import EventParams, group_onsets
from measurements.patterns.findings import LAYERS, Detection, Event, Flag, OfflinePeriod, SeriesState
from measurements.patterns.outages import (
    OutageParams,
    RoundBeat,
    all_failed,
    offline_periods,
    shutdown_events,
)
from measurements.store.queries import AnySelect
from measurements.store.tables import MeasurementRecord, Round, Target
from probe.mechanism import layer_of_label

if TYPE_CHECKING:
    from measurements.store.store import Store

__all__ = ["PatternParams", "RoundBeat", "detect", "detect_store", "layer_of", "update_flags"]

ObservationRow = tuple[int, int, str, str | None, str | None, str | None]
"""``(round_id, target_id, probe_asn, blocking, mechanism, confirmed)``, in round time order."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_BLOCKED = len(LAYERS)
_UNSCORED = -1
_LAYER_INDEX = {name: i for i, name in enumerate(LAYERS)}
_BLOCKING_LAYER = {"dns": 0, "tcp_ip": 1, "http-failure": 3, "http-diff": 3}


@dataclass(frozen=True, slots=True)
class PatternParams:
    """All detection settings."""

    cusum: CusumParams = field(default_factory=CusumParams)
    outages: OutageParams = field(default_factory=OutageParams)
    events: EventParams = field(default_factory=EventParams)


def layer_of(blocking: str | None, mechanism: str | None) -> int:
    """The index in :data:`~measurements.patterns.findings.LAYERS` at which a measurement was blocked.

    ``len(LAYERS)`` when it was not blocked, ``-1`` when it has no verdict. The mechanism's
    layer (:attr:`probe.mechanism.Mechanism.layer`: ``tls.reset.sni`` → ``tls``) wins over the
    coarser OONI ``blocking`` value; a mechanism that names no layer (``server.block``,
    ``down``…) leaves it to ``blocking``. A stored label this version does not know counts at
    the layer its prefix names (:func:`probe.mechanism.layer_of_label`).
    """
    if blocking is None:
        return _UNSCORED
    if blocking == "false":
        return _NOT_BLOCKED
    layer = layer_of_label(mechanism)
    if layer is not None:
        return _LAYER_INDEX[layer]
    return _BLOCKING_LAYER.get(blocking, 3)


class _Series:
    __slots__ = ("last_t", "layers")

    def __init__(self, params: CusumParams) -> None:
        self.layers = [Detector(params) for _ in LAYERS]
        self.last_t = 0.0


def detect(
    beats: Iterable[RoundBeat],
    rows: Iterable[ObservationRow],
    targets: Mapping[int, str],
    params: PatternParams | None = None,
) -> Detection:
    """Find flags, events and offline periods.

    Args:
        beats: every round (any order).
        rows: the measurements, ordered by their round's start time.
        targets: URL of each ``target_id``.
        params: detection settings; defaults when omitted.

    Returns:
        The :class:`~measurements.patterns.findings.Detection`, deterministic for the same input.
    """
    params = params or PatternParams()
    rounds = sorted(beats, key=lambda b: (b.started_at, b.id))
    by_asn: dict[str, list[RoundBeat]] = {}
    for beat in rounds:
        by_asn.setdefault(beat.probe_asn, []).append(beat)
    hours = {b.id: (b.started_at - _EPOCH).total_seconds() / 3600 for b in rounds if not all_failed(b)}
    when = {hours[b.id]: b.started_at for b in rounds if b.id in hours}
    series: dict[tuple[int, str], _Series] = {}
    layers: dict[tuple[str | None, str | None], int] = {}
    n_rows = 0
    for round_id, target_id, asn, blocking, mechanism, confirmed in rows:
        n_rows += 1
        t = hours.get(round_id)
        if t is None:
            continue
        s = series.get((target_id, asn))
        if s is None:
            s = series[(target_id, asn)] = _Series(params.cusum)
        s.last_t = t
        k = layers.get((blocking, mechanism))
        if k is None:
            k = layers[(blocking, mechanism)] = layer_of(blocking, mechanism)
        if k < 0:
            continue
        detectors = s.layers
        for j in range(k):  # the layers it got through
            d = detectors[j]
            if d.blocked or d.s > 0.0:
                d.observe(t, False)
        if k < _NOT_BLOCKED:
            detectors[k].observe(t, True, mechanism, confirmed)
    cc = {b.probe_asn: b.probe_cc for b in rounds}
    onsets, ends, states = _flags(series, targets, cc, when, params.cusum)
    blocking_events, assignment = group_onsets(
        onsets, [None if e is None else e.first_evidence_at for e in ends], params.events
    )
    events, renumber = _merge_events(blocking_events, shutdown_events(by_asn, params.outages))
    flags: list[Flag] = []
    for i, (onset, end) in enumerate(zip(onsets, ends, strict=True)):
        event = renumber[assignment[i]]
        flags.append(_with_event(onset, event))
        if end is not None:
            flags.append(_with_event(end, event))
    flags.sort(key=_flag_order)
    offline: list[OfflinePeriod] = []
    for asn in sorted(by_asn):
        offline.extend(offline_periods(by_asn[asn], params.outages))
    return Detection(
        flags=tuple(flags),
        events=tuple(events),
        offline=tuple(offline),
        series=tuple(sorted(states, key=lambda s: (s.target, s.probe_asn))),
        n_rounds=len(rounds),
        n_measurements=n_rows,
        first_round_at=rounds[0].started_at if rounds else None,
        last_round_at=rounds[-1].started_at if rounds else None,
    )


def _flags(
    series: dict[tuple[int, str], _Series],
    targets: Mapping[int, str],
    cc: Mapping[str, str],
    when: Mapping[float, datetime],
    params: CusumParams,
) -> tuple[list[Flag], list[Flag | None], list[SeriesState]]:
    onsets: list[Flag] = []
    ends: list[Flag | None] = []
    states: list[SeriesState] = []
    for (target_id, asn), s in series.items():
        url = targets.get(target_id, f"target #{target_id}")
        open_runs: list[tuple[str, Run]] = []
        for layer, d in zip(LAYERS, s.layers, strict=True):
            for onset, end in d.episodes:
                base = (url, asn, cc.get(asn, "ZZ"), layer, _top(onset.mechanisms), _top(onset.confirmed))
                onsets.append(_flag("blocking_onset", base, onset, when, params))
                ends.append(None if end is None else _flag("blocking_end", base, end, when, params))
                if end is None:
                    open_runs.append((layer, onset))
        states.append(
            SeriesState(
                target=url,
                probe_asn=asn,
                last_measured_at=when[s.last_t],
                blocked=tuple(layer for layer, _ in open_runs),
                mechanism=_top(open_runs[0][1].mechanisms) if open_runs else None,
                blocked_since=min((when[r.first_t] for _, r in open_runs), default=None),
            )
        )
    return onsets, ends, states


def _flag(
    kind: str,
    base: tuple[str, str, str, str, str | None, str | None],
    run: Run,
    when: Mapping[float, datetime],
    params: CusumParams,
) -> Flag:
    target, asn, cc, layer, mechanism, confirmed = base
    return Flag(
        kind=kind,
        target=target,
        probe_asn=asn,
        probe_cc=cc,
        layer=layer,
        mechanism=mechanism,
        confirmed=confirmed,
        first_evidence_at=when[run.first_t],
        last_evidence_at=when[run.last_t],
        detected_at=when[run.detected_t],
        n_measurements=run.n,
        confidence=round(params.confidence(run.llr), 6),
    )


def _top(counts: Mapping[str, int]) -> str | None:
    """The most frequent label (ties: alphabetical), ``None`` when there is none."""
    return min(counts, key=lambda k: (-counts[k], k)) if counts else None


def _with_event(flag: Flag, event: int) -> Flag:
    from dataclasses import replace

    return replace(flag, event=event)


def _flag_order(f: Flag) -> tuple[Any, ...]:
    return (f.first_evidence_at, f.target, f.probe_asn, LAYERS.index(f.layer), f.kind)


def _merge_events(blocking: list[Event], shutdowns: list[Event]) -> tuple[list[Event], list[int]]:
    """All events in time order; and where each of *blocking*'s went."""
    tagged = [(e, i) for i, e in enumerate(blocking)] + [(e, -1) for e in shutdowns]
    tagged.sort(key=lambda p: (p[0].started_at, p[0].kind, p[0].asns, p[0].targets))
    renumber = [0] * len(blocking)
    for n, (_, i) in enumerate(tagged):
        if i >= 0:
            renumber[i] = n
    return [e for e, _ in tagged], renumber


# --- from the store ---------------------------------------------------------------------------


def rounds_query() -> AnySelect:
    """Every round's heartbeat (:class:`RoundBeat` columns)."""
    r = Round
    return select(
        r.id, r.started_at, r.probe_asn, r.probe_cc, r.status, r.n_measurements, r.n_failed,
        r.network_up, r.control_reachable,
    )  # fmt: skip


def observations_query() -> AnySelect:
    """Every measurement's :data:`ObservationRow`, ordered by its round's start."""
    m = MeasurementRecord
    stmt = select(m.round_id, m.target_id, m.probe_asn, m.blocking, m.mechanism, m.confirmed)
    return stmt.join(Round, m.round_id == Round.id).order_by(Round.started_at, Round.id, m.id)


def detect_store(store: Store, params: PatternParams | None = None, *, batch: int = 10_000) -> Detection:
    """:func:`detect` over everything in *store*, streaming the measurements.

    The rounds, the targets and the measurements are read in one snapshot
    (:meth:`~measurements.store.store.Store.snapshot`): a round committed meanwhile is seen whole
    or not at all, and every measurement's target is known.

    Raises:
        StorageError: the database cannot be read.
    """
    with store.snapshot("read measurements") as conn:
        beats = [RoundBeat(*row) for row in conn.execute(rounds_query())]
        targets: dict[int, str] = {i: url for i, url in conn.execute(select(Target.id, Target.url))}
        with conn.execution_options(yield_per=batch).execute(observations_query()) as result:
            rows: Iterable[Sequence[Any]] = (row for part in result.partitions() for row in part)
            return detect(beats, rows, targets, params)  # type: ignore[arg-type]  # rows are ObservationRow-shaped


def update_flags(store: Store, params: PatternParams | None = None) -> Detection:
    """Detect over *store* and store the flags and events, replacing the previous ones.

    Raises:
        StorageError: the database cannot be read or written.
    """
    from measurements.patterns.flagstore import save

    found = detect_store(store, params)
    save(store, found)
    return found
