"""Summary columns derived from a :class:`~probe.model.Measurement`.

A round's heartbeat (:class:`~probe.rounds.roundstore.Heartbeat`,
:func:`~probe.rounds.roundstore.heartbeat_of`) is the round's to report; it is re-exported
here for the readers of the data side.

These are read off the measurement as the probe recorded it — never re-derived from the
stored JSON text — so the columns and the body cannot disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from probe.model import AnyMeasurement, Measurement, OONIMeasurement
from probe.outcome import Outcome, outcome_of
from probe.rounds.roundstore import Heartbeat, heartbeat_of
from probe.serialize import to_json

__all__ = [
    "NETWORK_INDEPENDENT",
    "Heartbeat",
    "blocking_text",
    "heartbeat_of",
    "is_failed",
    "outcome_column",
    "stored_row",
    "summary_columns",
]


def blocking_text(blocking: bool | str | None) -> str | None:
    """The ``blocking`` verdict as stored: ``False`` → ``"false"``, a string as is, ``None`` → NULL."""
    if blocking is None:
        return None
    if isinstance(blocking, bool):
        return "true" if blocking else "false"
    return blocking


def summary_columns(m: AnyMeasurement) -> dict[str, Any]:
    """The ``measurements`` summary columns of *m* (everything but the row ids, ``outcome`` and ``body``).

    ``measured_at`` is the model's ``measurement_start_time`` as it is (an aware UTC datetime).
    An :class:`~probe.model.OONIMeasurement`'s come from its summary, and its ``input``
    column is its target (the series it belongs to; its document keeps OONI's ``input``).
    """
    if isinstance(m, OONIMeasurement):
        s = m.summary
        return {
            "measurement_uid": m.measurement_uid,
            "test_name": m.test_name,
            "input": m.target,
            "measured_at": m.measurement_start_time,
            "runtime_s": float(m.test_runtime),
            "probe_asn": m.probe_asn,
            "probe_cc": m.probe_cc,
            "blocking": blocking_text(s.blocking),
            "accessible": s.accessible,
            "mechanism": None if s.mechanism is None else str(s.mechanism),
            "confirmed": s.confirmed,
            "dns_consistency": s.dns_consistency,
            "dns_failure": s.dns_failure,
            "tcp_failure": s.tcp_failure,
            "tls_failure": s.tls_failure,
            "http_failure": s.http_failure,
            "control_failure": s.control_failure,
        }
    tk = m.test_keys
    return {
        "measurement_uid": m.measurement_uid,
        "test_name": m.test_name,
        "input": m.input,
        "measured_at": m.measurement_start_time,
        "runtime_s": float(m.test_runtime),
        "probe_asn": m.probe_asn,
        "probe_cc": m.probe_cc,
        "blocking": blocking_text(tk.blocking),
        "accessible": tk.accessible,
        "mechanism": None if tk.mechanism is None else str(tk.mechanism),  # a Mechanism's plain text
        "confirmed": tk.confirmed,
        "dns_consistency": tk.dns_consistency,
        "dns_failure": tk.dns_experiment_failure,
        "tcp_failure": next((c.status.failure for c in tk.tcp_connect if c.status.failure), None),
        "tls_failure": next((h.failure for h in tk.tls_handshakes if h.failure), None),
        "http_failure": tk.http_experiment_failure,
        "control_failure": tk.control_failure,
    }


NETWORK_INDEPENDENT = frozenset(
    o.value for o in (Outcome.NO_VERDICT_NOT_MEASURED, Outcome.BLOCKED_CONFIRMED, Outcome.SERVER_REFUSAL)
)
"""The outcomes :func:`probe.outcome.outcome_of` gives whatever ``network_up`` is; every other
outcome becomes ``shutdown`` when the network was down. A round's measurements are stored as
they end with ``network_up`` unknown, and this set tells the store which of them to turn into
``shutdown`` once the round's heartbeat says the network was down (tested against
:func:`outcome_column` over every combination)."""


def outcome_column(row: Mapping[str, Any], *, network_up: bool | None) -> Outcome:
    """The outcome people read for a measurement with these summary columns, in a round whose
    heartbeat says *network_up*: :func:`probe.outcome.outcome_of` over them.

    What the store writes in ``measurements.outcome`` and what ``probe run`` shows, so the
    table and the data never disagree.
    """
    return outcome_of(
        blocking=row["blocking"],
        accessible=row["accessible"],
        mechanism=row["mechanism"],
        confirmed=row["confirmed"],
        control_failure=row["control_failure"],
        network_up=network_up,
    )


def is_failed(row: Mapping[str, Any]) -> bool:
    """Was this measurement blocked or failed, judging by its summary columns?

    True for an anomaly (``blocking`` is a mechanism), a site found down (``accessible``
    false), or a failed DNS lookup or fetch. Not for ``blocking`` null alone: without a
    control every verdict is null, yet a page that loaded has not failed.
    :func:`measurements.store.queries.failing_query` asks the same in SQL.
    """
    blocking = row["blocking"]
    return (
        (blocking is not None and blocking != "false")
        or row["accessible"] is False
        or row["dns_failure"] is not None
        or row["http_failure"] is not None
    )


def stored_row(m: AnyMeasurement, *, network_up: bool | None = None) -> dict[str, Any]:
    """The ``measurements`` row of *m* (ids aside): summary columns, outcome and the OONI JSON body.

    *network_up* is the round's heartbeat (:class:`Heartbeat`), which the outcome depends on.

    The body never carries the volunteer's address: ``probe_ip`` is forced to OONI's
    ``127.0.0.1`` marker whatever the measurement held (every other field was scrubbed of the
    volunteer's addresses where the measurement was made, by :mod:`probe.privacy`).
    """
    if isinstance(m, Measurement) and m.probe_ip != "127.0.0.1":
        m = dataclasses.replace(m, probe_ip="127.0.0.1")
    columns = summary_columns(m)
    return {**columns, "outcome": outcome_column(columns, network_up=network_up).value, "body": to_json(m)}
