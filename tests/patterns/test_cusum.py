"""The per-series detector and the layer scoring, on hand-written sequences."""

from __future__ import annotations

import random

import pytest

from measurements.patterns.cusum import CusumParams, Detector
from measurements.patterns.detect import layer_of


def run(sequence: str, *, step_h: float = 1.0, start: float = 0.0) -> Detector:
    """Feed ``B`` (blocked) / ``.`` (clear) / `` `` (gap) one hour apart."""
    d = Detector(CusumParams())
    for i, c in enumerate(sequence):
        if c != " ":
            d.observe(start + i * step_h, c == "B", "tls.reset.sni" if c == "B" else None)
    return d


def test_full_block_flagged_at_fourth_blocked_measurement_and_end_at_third_clean() -> None:
    d = run("....." + "B" * 20 + "." * 10)
    ((onset, end),) = d.episodes
    assert (onset.first_t, onset.detected_t, onset.last_t, onset.n) == (5, 8, 24, 20)
    assert onset.mechanisms == {"tls.reset.sni": 20}
    assert end is not None
    assert (end.first_t, end.detected_t, end.n) == (25, 27, 3)
    assert not d.blocked


@pytest.mark.parametrize(
    "sequence",
    [
        "BBB" + "." * 20,  # three in a row: below the threshold
        ".B.B.B.B.B.B.B.B.B.B.B.B",  # 50 % alternating
    ],
)
def test_sparse_failures_raise_nothing(sequence: str) -> None:
    assert run(sequence).episodes == []


@pytest.mark.parametrize(("sequence", "detected_t"), [("BBBBBBB." * 6, 3), ("BBB." * 6, 5)])
def test_partial_block_is_flagged(sequence: str, detected_t: int) -> None:
    ((onset, end),) = run(sequence).episodes  # 7 of 8, 3 of 4 blocked
    assert (onset.first_t, onset.detected_t, end) == (0, detected_t, None)


def test_gap_is_not_a_zero_and_old_evidence_decays() -> None:
    # Three failures, ten days without measurements, three failures: decayed, no flag.
    assert run("BBB" + " " * 240 + "BBB").episodes == []
    # The same with a short (offline) gap: the evidence adds up.
    d = run("BBB" + " " * 5 + "BBB")
    assert len(d.episodes) == 1
    assert d.episodes[0][0].first_t == 0


def test_blocked_series_does_not_end_on_a_leak() -> None:
    d = run("B" * 10 + "." + "B" * 10 + ".." + "B" * 10)
    assert d.blocked
    assert len(d.episodes) == 1


@pytest.mark.parametrize(
    ("sequence", "onset_t", "end_t"),
    [
        # Random failures after the end: the end is the first clean measurement, not the
        # last return of Page's statistic to zero (19 and 17 before issue 10).
        ("....." + "B" * 10 + "..BB......", 5, 15),
        ("....." + "B" * 10 + ".B.B......", 5, 15),
        # A random failure two rounds before the onset is not its start (1 before issue 10).
        (".B." + "B" * 10 + "......", 3, 13),
        # Adjacent to the change, a random failure cannot be told from the block.
        ("....B" + "B" * 10 + "B.....", 4, 16),
    ],
)
def test_change_is_placed_at_the_most_likely_point(sequence: str, onset_t: int, end_t: int) -> None:
    ((onset, end),) = run(sequence).episodes
    assert end is not None
    assert (onset.first_t, end.first_t) == (onset_t, end_t)


def _ml_start(llrs: list[float], *, latest: bool) -> int:
    """The k maximising ``sum(llrs[k:])``; among ties the latest (or the earliest)."""
    best, best_k, total = -float("inf"), len(llrs), 0.0
    for k in range(len(llrs) - 1, -1, -1):
        total += llrs[k]
        if total > best + 1e-9 or (not latest and total >= best - 1e-9):
            best, best_k = max(best, total), k
    return best_k


@pytest.mark.parametrize(
    "params", [CusumParams(), CusumParams(p0=0.05, p1=0.9)], ids=["default", "asymmetric"]
)
@pytest.mark.parametrize("seed", range(10))
def test_estimates_are_the_maximum_likelihood_change_points(seed: int, params: CusumParams) -> None:
    """Brute force over noisy, leaky blocks: onset and end at the argmax of the step's log-LR.

    The window is everything since the detector last changed state; ties go to the shorter
    block (the later onset, the earlier end).
    """
    rng = random.Random(seed)
    blocked: list[bool] = []
    while len(blocked) < 400:
        rate = rng.choice((0.1, 0.9))  # 10 % noise or 10 % leaks: many ties
        blocked += [rng.random() < rate for _ in range(rng.randint(5, 40))]
    d = Detector(params)
    for t, b in enumerate(blocked):
        d.observe(t, b)
    assert len(d.episodes) >= 3
    wb, wc = params.w_blocked, params.w_clear
    since = 0
    for onset, end in d.episodes:
        window = blocked[since : int(onset.detected_t) + 1]
        assert onset.first_t == since + _ml_start([wb if b else wc for b in window], latest=True)
        since = int(onset.detected_t) + 1
        if end is None:
            break
        window = blocked[since : int(end.detected_t) + 1]
        assert end.first_t == since + _ml_start([-wb if b else -wc for b in window], latest=False)
        since = int(end.detected_t) + 1


@pytest.mark.parametrize(
    ("blocking", "mechanism", "layer"),
    [
        (None, None, -1),
        ("false", None, 4),
        ("dns", "dns.nxdomain", 0),
        ("tcp_ip", "tcp.timeout", 1),
        ("http-failure", "tls.reset.sni", 2),
        ("http-failure", None, 3),
        ("http-diff", "http.blockpage", 3),
        ("dns", None, 0),
        ("http-failure", "unheard.of", 3),
    ],
)
def test_layer_of(blocking: str | None, mechanism: str | None, layer: int) -> None:
    assert layer_of(blocking, mechanism) == layer


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="p0"):
        CusumParams(p0=0.5, p1=0.4)
