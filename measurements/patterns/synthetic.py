"""A seeded, deterministic generator of stored rounds, for backtesting and benchmarking patterns.

Modelled on the Pakistan timeline (``reference/pakistan.md`` §1.3): hourly rounds on four
networks; X blocked by SNI reset from 17 February on three of them (lifted later); three
evening outages of four social platforms together, everywhere (the 20 January 2024 pattern);
a day-long shutdown of the mobile network; 2 % random failures everywhere; and gaps of
several hours in which the probe was off (no rounds at all).

The same :class:`SyntheticConfig` always yields the same rounds, measurements and
:class:`Truth`. :func:`materialize` gives :func:`measurements.patterns.detect.detect`'s inputs in
memory; :func:`write` stores them (summary columns only: the ``body`` is a stub).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import Connection, insert, text

from measurements.patterns.outages import RoundBeat
from measurements.store.summary import outcome_column
from measurements.store.tables import MeasurementRecord, Network, Round, Target

if TYPE_CHECKING:
    from measurements.patterns.detect import ObservationRow
    from measurements.store.store import Store

X = "https://x.com/"
SOCIAL = ("https://www.facebook.com/", "https://www.instagram.com/", "https://www.youtube.com/",
          "https://www.tiktok.com/")  # fmt: skip
OTHERS = ("https://web.whatsapp.com/", "https://telegram.org/", "https://www.wikipedia.org/",
          "https://www.dawn.com/", "https://www.bbc.com/urdu")  # fmt: skip
NETWORKS = (("AS17557", "PTCL"), ("AS9541", "Cybernet"), ("AS23674", "Nayatel"), ("AS45669", "Jazz mobile"))

# (blocking, accessible, mechanism, dns, tcp, tls, http failure)
_Outcome = tuple[str | None, bool | None, str | None, str | None, str | None, str | None, str | None]
_OK: _Outcome = ("false", True, "ok", None, None, None, None)
_SNI: _Outcome = ("http-failure", False, "tls.reset.sni", None, None, "connection_reset", "connection_reset")
_TCP: _Outcome = (
    "tcp_ip",
    False,
    "tcp.timeout",
    None,
    "generic_timeout_error",
    None,
    "generic_timeout_error",
)
_NOISE: tuple[_Outcome, ...] = (
    ("dns", False, "dns.timeout", "generic_timeout_error", None, None, "generic_timeout_error"),
    _TCP,
    ("http-failure", False, "tls.timeout", None, None, "generic_timeout_error", "generic_timeout_error"),
    ("http-failure", False, "http.timeout", None, None, None, "generic_timeout_error"),
)
# Everything timed out (the lookup first): what a shut-down network gives; the round's heartbeat
# (network_up false) makes it "network shut down" for people.
_DOWN: _Outcome = (None, None, "dns.timeout", "generic_timeout_error", None, None, "generic_timeout_error")
_TIMEOUT = "generic_timeout_error"


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """What to generate. Days and hours count from *start*; networks are indices into :data:`NETWORKS`."""

    seed: int = 20240120
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    days: int = 365
    extra_targets: int = 0
    """Healthy filler targets (``https://siteN.example/``) to reach a volume, for the benchmark."""
    x_block: tuple[int, int, int | None] = (47, 9, 309)
    """X blocked by SNI reset from (day, hour) until day (at the same hour); ``None``: never lifted."""
    x_networks: tuple[int, ...] = (0, 1, 2)
    outages: tuple[tuple[int, int, int], ...] = ((19, 13, 6), (128, 14, 5), (250, 13, 6))
    """Evening outages of :data:`SOCIAL` on every network: (day, UTC hour, hours)."""
    shutdown: tuple[int, int, int] = (129, 0, 24)
    """Day-long shutdown of the mobile network: (day, hour, hours)."""
    shutdown_network: int = 3
    failure_rate: float = 0.02
    no_control_rate: float = 0.005
    """Measurements whose control failed (verdict null), besides the random failures."""
    offline_gaps: int = 10
    """Probe-offline gaps per network, 3 to 9 hours each, away from the scripted events."""

    @classmethod
    def small(cls, **overrides: object) -> SyntheticConfig:
        """Sixty days with every scripted kind of event: quick enough for a database round trip."""
        values: dict[str, object] = {
            "days": 60, "x_block": (12, 9, 41), "outages": ((6, 13, 6), (22, 14, 5), (50, 13, 6)),
            "shutdown": (30, 0, 24), "offline_gaps": 3,
        }  # fmt: skip
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]  # keyword names checked by the dataclass


class Episode(NamedTuple):
    """A scripted block on one series: [start, end) in round hours."""

    target: str
    probe_asn: str
    layer: str
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class Truth:
    """The scripted events, to compare detection with."""

    blocks: tuple[Episode, ...]
    outages: tuple[tuple[datetime, datetime], ...]
    """The evening multi-platform outages (every network)."""
    shutdowns: tuple[tuple[str, datetime, datetime], ...]
    offline: tuple[tuple[str, datetime, datetime], ...]
    """(ASN, first missing hour, first hour back)."""
    targets: tuple[str, ...] = field(default=())


class SynthRow(NamedTuple):
    """One generated measurement's summary columns."""

    round_id: int
    target_id: int
    probe_asn: str
    blocking: str | None
    accessible: bool | None
    mechanism: str | None
    dns_failure: str | None
    tcp_failure: str | None
    tls_failure: str | None
    http_failure: str | None
    control_failure: str | None


def targets_of(config: SyntheticConfig) -> tuple[str, ...]:
    """The URLs measured each round (ids are positions + 1)."""
    return (X, *SOCIAL, *OTHERS, *(f"https://site{i}.example/" for i in range(config.extra_targets)))


def truth(config: SyntheticConfig) -> Truth:
    """The scripted events of *config*."""
    at = _hour_clock(config.start)
    day, hour, until = config.x_block
    blocks = [
        Episode(X, NETWORKS[n][0], "tls", at(day, hour), None if until is None else at(until, hour))
        for n in config.x_networks
    ]
    outages = tuple((at(d, h), at(d, h + n)) for d, h, n in config.outages)
    blocks += [Episode(url, asn, "tcp", s, e) for s, e in outages for url in SOCIAL for asn, _ in NETWORKS]
    d, h, n = config.shutdown
    shutdowns = ((NETWORKS[config.shutdown_network][0], at(d, h), at(d, h + n)),)
    rng = random.Random(config.seed)
    busy = [(b.start, b.end or b.start) for b in blocks] + [(s, e) for _, s, e in shutdowns]
    offline: list[tuple[str, datetime, datetime]] = []
    for asn, _ in NETWORKS:
        placed = 0
        while placed < config.offline_gaps:
            start = at(rng.randrange(1, config.days - 1), rng.randrange(24))
            end = start + timedelta(hours=rng.randint(3, 9))
            margin = timedelta(hours=12)
            if any(start - margin < e and s < end + margin for s, e in busy):
                continue
            offline.append((asn, start, end))
            placed += 1
    blocks.sort(key=lambda b: (b.start, b.target, b.probe_asn))
    return Truth(tuple(blocks), outages, shutdowns, tuple(sorted(offline)), targets_of(config))


def simulate(config: SyntheticConfig) -> Iterator[tuple[RoundBeat, list[SynthRow]]]:
    """Every round in time order, with its measurements."""
    script = truth(config)
    urls = script.targets
    blocked: dict[tuple[str, str], list[Episode]] = {}
    for b in script.blocks:
        blocked.setdefault((b.target, b.probe_asn), []).append(b)
    rng = random.Random(config.seed + 1)
    round_id = 0
    for hour in range(config.days * 24):
        slot = config.start + timedelta(hours=hour)
        for asn, _ in NETWORKS:
            if any(a == asn and s <= slot < e for a, s, e in script.offline):
                continue
            round_id += 1
            started = slot + timedelta(seconds=rng.randrange(300))
            down = any(a == asn and s <= slot < e for a, s, e in script.shutdowns)
            rows = []
            for target_id, url in enumerate(urls, start=1):
                outcome = _DOWN if down else _outcome(rng, config, blocked.get((url, asn), ()), slot)
                control = _TIMEOUT if outcome[0] is None else None
                rows.append(SynthRow(round_id, target_id, asn, *outcome, control))
            n_failed = sum(map(_failed, rows))
            beat = RoundBeat(
                round_id, started, asn, "PK", "complete", len(rows), n_failed, not down, not down
            )
            yield beat, rows


def _failed(r: SynthRow) -> bool:
    """:func:`measurements.store.summary.is_failed` on a generated row."""
    return (
        r.blocking not in (None, "false")
        or r.accessible is False
        or r.dns_failure is not None
        or r.http_failure is not None
    )


def _outcome(
    rng: random.Random, config: SyntheticConfig, episodes: Sequence[Episode], slot: datetime
) -> _Outcome:
    for e in episodes:
        if e.start <= slot and (e.end is None or slot < e.end):
            return _SNI if e.layer == "tls" else _TCP
    draw = rng.random()
    if draw < config.failure_rate:
        return _NOISE[rng.randrange(len(_NOISE))]
    if draw < config.failure_rate + config.no_control_rate:
        return (None, True, None, None, None, None, None)
    return _OK


def materialize(config: SyntheticConfig) -> tuple[list[RoundBeat], list[ObservationRow], dict[int, str]]:
    """:func:`measurements.patterns.detect.detect`'s three inputs, in memory."""
    beats: list[RoundBeat] = []
    rows: list[ObservationRow] = []
    for beat, measured in simulate(config):
        beats.append(beat)
        rows.extend((r.round_id, r.target_id, r.probe_asn, r.blocking, r.mechanism, None) for r in measured)
    return beats, rows, dict(enumerate(targets_of(config), start=1))


def write(store: Store, config: SyntheticConfig, *, chunk: int = 20_000) -> int:
    """Store *config*'s rounds and measurements (into an empty store); return how many measurements.

    Raises:
        StorageError: the database cannot be written.
    """
    now = config.start
    urls = targets_of(config)
    n = 0
    # Bulk rows in one transaction, without building Measurement objects (far too slow here).
    with store.transaction("write synthetic rounds") as conn:
        conn.execute(
            insert(Target),
            [{"id": i, "url": u, "category_code": "", "category_description": "", "first_seen_at": now}
             for i, u in enumerate(urls, start=1)],
        )  # fmt: skip
        conn.execute(
            insert(Network),
            [{"asn": a, "cc": "PK", "name": name, "first_seen_at": now, "last_seen_at": now}
             for a, name in NETWORKS],
        )  # fmt: skip
        beats: list[dict[str, object]] = []
        rows: list[dict[str, object]] = []
        for beat, measured in simulate(config):
            beats.append({**beat._asdict(), "ended_at": beat.started_at, "n_errors": 0,
                          "software_version": "synthetic", "config_digest": ""})  # fmt: skip
            for r in measured:
                n += 1
                row = {**r._asdict(), "measurement_uid": str(uuid.UUID(int=n, version=4)),
                       "input": urls[r.target_id - 1],
                       "measured_at": beat.started_at, "runtime_s": 1.0, "probe_cc": "PK",
                       "confirmed": None, "dns_consistency": None, "body": "{}"}  # fmt: skip
                rows.append({**row, "outcome": outcome_column(row, network_up=beat.network_up).value})
            if len(rows) >= chunk:
                _flush(conn, beats, rows)
        _flush(conn, beats, rows)
        if conn.dialect.name == "postgresql":  # ids given explicitly: move the sequences past them
            for table in ("rounds", "targets"):
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                conn.execute(text(f"SELECT setval({sequence}, (SELECT max(id) FROM {table}))"))
    return n


def _flush(conn: Connection, beats: list[dict[str, object]], rows: list[dict[str, object]]) -> None:
    if beats:
        conn.execute(insert(Round), beats)
    if rows:
        conn.execute(insert(MeasurementRecord), rows)
    beats.clear()
    rows.clear()


def _hour_clock(start: datetime) -> Callable[[int, int], datetime]:
    def at(day: int, hour: int) -> datetime:
        return start + timedelta(days=day, hours=hour)

    return at
