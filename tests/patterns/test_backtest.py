"""Backtest: the synthetic Pakistan year (measurements.patterns.synthetic) against what detection reports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from measurements.patterns.detect import detect
from measurements.patterns.synthetic import NETWORKS, SOCIAL, SyntheticConfig, X, materialize
from tests.patterns.backtest import Backtest

MAX_DELAY_ROUNDS = 6


@pytest.fixture(scope="module")
def year() -> Backtest:
    return Backtest(SyntheticConfig())


@pytest.fixture(scope="module")
def small() -> Backtest:
    return Backtest(SyntheticConfig.small(seed=7))


@pytest.fixture(params=["year", "small"])
def backtest(request: pytest.FixtureRequest) -> Backtest:
    result: Backtest = request.getfixturevalue(request.param)
    return result


def test_every_onset_and_end_found_within_six_rounds(backtest: Backtest) -> None:
    assert backtest.truth.blocks
    for episode in backtest.truth.blocks:
        (onset,) = backtest.flags("blocking_onset", episode.target, episode.probe_asn, episode.start)
        assert onset.layer == episode.layer
        assert (
            backtest.rounds_between(episode.probe_asn, episode.start, onset.detected_at) <= MAX_DELAY_ROUNDS
        )
        assert onset.confidence > 0.99
        assert episode.end is not None
        (end,) = backtest.flags("blocking_end", episode.target, episode.probe_asn, episode.end)
        assert backtest.rounds_between(episode.probe_asn, episode.end, end.detected_at) <= MAX_DELAY_ROUNDS
        assert end.event == onset.event


def test_x_block_is_one_national_sni_event(backtest: Backtest) -> None:
    onsets = [f for f in backtest.found.flags if f.target == X and f.kind == "blocking_onset"]
    assert {(f.probe_asn, f.layer, f.mechanism) for f in onsets} == {
        (asn, "tls", "tls.reset.sni") for asn, _ in NETWORKS[:3]
    }
    (event,) = {backtest.found.events[f.event] for f in onsets if f.event is not None}
    assert (event.kind, event.scope, event.targets, event.layers) == ("blocking", "national", (X,), ("tls",))
    assert event.asns == tuple(sorted(asn for asn, _ in NETWORKS[:3]))


def test_evening_outages_are_multi_platform_events(backtest: Backtest) -> None:
    events = [e for e in backtest.found.events if e.kind == "multi_platform"]
    assert len(events) == len(backtest.truth.outages) == 3
    for event, (start, end) in zip(events, backtest.truth.outages, strict=True):
        assert event.scope == "national"
        assert event.targets == tuple(sorted(SOCIAL))
        assert event.asns == tuple(sorted(asn for asn, _ in NETWORKS))
        assert event.n_flags == len(SOCIAL) * len(NETWORKS)
        assert abs(event.started_at - start) <= timedelta(hours=3)
        assert event.ended_at is not None
        assert abs(event.ended_at - end) <= timedelta(hours=3)


def test_shutdown_is_one_shutdown_not_many_blocks(backtest: Backtest) -> None:
    ((asn, start, end),) = backtest.truth.shutdowns
    shutdowns = [e for e in backtest.found.events if e.kind == "shutdown"]
    assert len(shutdowns) == 1
    (event,) = shutdowns
    assert (event.asns, event.scope, event.targets) == ((asn,), "network", ())
    assert abs(event.started_at - start) < timedelta(hours=1)
    assert event.ended_at is not None
    assert abs(event.ended_at - end) < timedelta(hours=1)
    during = [
        f
        for f in backtest.found.flags
        if f.probe_asn == asn and start <= f.detected_at <= end + timedelta(hours=6)
    ]
    assert during == []


def test_offline_gaps_are_never_outages(backtest: Backtest) -> None:
    found = backtest.found
    for asn, start, end in backtest.truth.offline:
        covering = [
            p for p in found.offline if p.probe_asn == asn and p.started_at < start and p.ended_at >= end
        ]
        assert len(covering) == 1, (asn, start)
        overlapping = [
            e for e in found.events if e.started_at < end and (e.ended_at is None or e.ended_at > start)
        ]
        assert all(asn not in e.asns for e in overlapping if e.kind == "shutdown")
    assert len(found.offline) <= len(backtest.truth.offline)


def test_no_flag_outside_the_scripted_blocks(backtest: Backtest) -> None:
    scripted = {(b.target, b.probe_asn, b.layer) for b in backtest.truth.blocks}
    assert {(f.target, f.probe_asn, f.layer) for f in backtest.found.flags} == scripted
    assert len(backtest.found.flags) == 2 * len(backtest.truth.blocks)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_healthy_noisy_series_raise_nothing(seed: int) -> None:
    quiet = SyntheticConfig(
        seed=seed, days=120, x_networks=(), outages=(), shutdown=(0, 0, 0), offline_gaps=6
    )
    beats, rows, targets = materialize(quiet)
    assert sum(r[3] not in (None, "false") for r in rows) > 0.015 * len(rows)  # the noise is there
    found = detect(beats, rows, targets)
    assert (found.flags, found.events) == ((), ())
    assert all(not s.blocked for s in found.series)
    assert len(found.offline) == 6 * len(NETWORKS)


def test_detection_is_deterministic() -> None:
    config = SyntheticConfig.small(seed=11)
    first = detect(*materialize(config))
    again = detect(*materialize(config))
    assert first == again
    assert first.flags


def test_current_state_lists_open_blocks() -> None:
    config = SyntheticConfig.small(x_block=(40, 9, None))
    found = detect(*materialize(config))
    blocked = {(s.target, s.probe_asn): s for s in found.series if s.blocked}
    assert set(blocked) == {(X, asn) for asn, _ in NETWORKS[:3]}
    state = blocked[(X, NETWORKS[0][0])]
    assert (state.blocked, state.mechanism) == (("tls",), "tls.reset.sni")
    assert state.blocked_since is not None
    assert abs(state.blocked_since - (config.start + timedelta(days=40, hours=9))) < timedelta(hours=2)
    x_event = next(e for e in found.events if X in e.targets and e.kind == "blocking")
    assert x_event.ended_at is None
