"""``http.throttle`` versus ``http.timeout``: what the transfer evidence of a timed-out fetch says.

Every case is an HTTPS fetch the control completed; the probe's fetch started at 0.3 s and, but
for the slow success, hit its 10 s deadline at 10.3 s. OONI's keys never change with the
evidence: a timed-out fetch is ``http-failure`` whatever arrived before the deadline.
"""

from __future__ import annotations

import dataclasses

import pytest

from probe.analysis.mechanism import is_throttled
from probe.model import HTTPTransaction, WebConnectivityTestKeys
from tests.analysis.builders import HTTPS_URL, IP, connect, control, fetch, handshake, keys, query, run

T0, DEADLINE = 0.3, 10.3
TIMEOUT = "generic_timeout_error"


def _fetch(
    headers_t: float | None,
    last_byte_t: float | None,
    received: int | None,
    *,
    failure: str | None = TIMEOUT,
    t: float = DEADLINE,
) -> tuple[WebConnectivityTestKeys, HTTPTransaction]:
    c = connect(IP, 443)
    transaction = dataclasses.replace(
        fetch(HTTPS_URL, c, failure=failure),
        t0=T0,
        t=t,
        x_headers_t=headers_t,
        x_body_last_byte_t=last_byte_t,
        x_body_bytes_received=received,
    )
    return keys(query(IP), c, handshake(c), transaction), transaction


def _verdict(measured: WebConnectivityTestKeys) -> tuple[object, ...]:
    ctrl = control(tcp={f"{IP}:443": None}, tls={f"{IP}:443": None})
    verdict = run(measured, ctrl, HTTPS_URL)
    return verdict.blocking, verdict.accessible, verdict.http_experiment_failure, verdict.mechanism


TIMED_OUT = ("http-failure", False, TIMEOUT)

CASES = [
    # A steady trickle to the deadline: 8 KB/s from 0.5 s, the last bytes 0.1 s before it.
    ("steady-trickle", (0.5, 10.2, 79_000), "http.throttle"),
    # Coarse deliveries, as the lab's 64 kbit/s over TLS gives: 16 KiB records, irregularly
    # spaced; the last one 3.66 s before the deadline, after 6.09 s of delivery.
    ("tls-records", (0.58, 6.67, 49_152), "http.throttle"),
    ("headers-then-silence", (0.5, None, 0), "http.timeout"),
    ("nothing-at-all", (None, None, None), "http.timeout"),
    # A burst right after the headers, then nothing for 9.6 s: a stall, not a slow link.
    ("burst-then-silence", (0.5, 0.7, 65_536), "http.timeout"),
    # Headers and one burst shortly before the deadline: no flow shown, so no throttle.
    ("late-burst", (9.8, 9.8, 16_384), "http.timeout"),
]


@pytest.mark.parametrize(("evidence", "mechanism"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_timed_out_fetch(evidence: tuple[float | None, float | None, int | None], mechanism: str) -> None:
    measured, _ = _fetch(*evidence)
    assert _verdict(measured) == (*TIMED_OUT, mechanism)


def test_without_evidence_a_timeout_stays_a_timeout() -> None:
    """Data recorded before the ``x_`` fields existed (all ``None``) keeps its label."""
    c = connect(IP, 443)
    measured = keys(query(IP), c, handshake(c), fetch(HTTPS_URL, c, failure=TIMEOUT))
    assert _verdict(measured) == (*TIMED_OUT, "http.timeout")


def test_a_slow_transfer_that_finished_is_ok() -> None:
    measured, transaction = _fetch(0.5, 9.5, 80_000, failure=None, t=9.51)
    assert transaction.response is not None
    assert _verdict(measured) == (False, True, None, "ok")


def test_a_reset_midway_is_a_reset_whatever_came_before() -> None:
    measured, _ = _fetch(0.5, 10.2, 79_000, failure="connection_reset", t=10.21)
    assert _verdict(measured) == ("http-failure", False, "connection_reset", "http.reset")


def test_a_throttled_fetch_the_control_could_not_complete_is_down() -> None:
    measured, _ = _fetch(0.5, 10.2, 79_000)
    ctrl = control(tcp={f"{IP}:443": None}, tls={f"{IP}:443": None}, http_failure=TIMEOUT)
    verdict = run(measured, ctrl, HTTPS_URL)
    assert (verdict.blocking, verdict.accessible, verdict.mechanism) == (False, False, "down")


@pytest.mark.parametrize(
    ("last_byte_t", "throttled"),
    [
        (5.3, True),  # silence 5.0 s == delivery 5.0 s: the bound is inclusive
        (5.299, False),  # silence 5.001 s > delivery 4.999 s
        (10.3, True),  # bytes at the very deadline
    ],
)
def test_the_bound_is_the_time_spent_delivering(last_byte_t: float, throttled: bool) -> None:
    _, transaction = _fetch(0.3, last_byte_t, 1)
    assert is_throttled(transaction) is throttled


@pytest.mark.parametrize("failure", ["timed_out", TIMEOUT])
def test_both_timeouts_count(failure: str) -> None:
    _, transaction = _fetch(0.5, 10.2, 100, failure=failure)
    assert is_throttled(transaction)


def test_no_body_bytes_is_never_throttle() -> None:
    """Timestamps without bytes (inconsistent data) do not make a flow."""
    _, transaction = _fetch(0.5, 10.2, 0)
    assert not is_throttled(transaction)
