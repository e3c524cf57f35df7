"""The per-series detector and the layer scoring, on hand-written sequences."""

from __future__ import annotations

import pytest

from measurements.cusum import CusumParams, Detector
from measurements.patterns import layer_of


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
