"""The typed rows the store hands back: plain data, one class per kind of read.

:mod:`measurements.store.queries` holds the SELECTs whose columns they match.
:class:`TargetInfo`, what the round hands the store, is defined on the round's side
(:mod:`probe.rounds.roundstore`) and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple

from probe.rounds.roundstore import TargetInfo as TargetInfo  # defined on the round's side, which hands it in

TARGET_METADATA: Final = ("category_code", "category_description", "date_added", "source", "notes")
"""The test-list columns stored with a target and exported with each of its measurements."""


class MeasurementRow(NamedTuple):
    """One measurement as exported: the summary columns (CSV) and, on request, the body (JSONL)."""

    measurement_uid: str
    measured_at: datetime
    input: str
    category_code: str
    category_description: str
    date_added: str
    source: str
    notes: str
    probe_asn: str
    probe_cc: str
    runtime_s: float
    outcome: str
    blocking: str | None
    accessible: bool | None
    mechanism: str | None
    confirmed: str | None
    dns_consistency: str | None
    dns_failure: str | None
    tcp_failure: str | None
    tls_failure: str | None
    http_failure: str | None
    control_failure: str | None
    round_id: int
    body: str | None
    """The OONI JSON text; ``None`` unless asked for (``with_body=True``)."""


@dataclass(frozen=True, slots=True)
class RoundInfo:
    """A ``rounds`` row, as ``probe status`` shows it."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    status: str
    probe_asn: str
    probe_cc: str
    software_version: str
    config_digest: str
    n_targets: int
    n_measurements: int
    n_failed: int
    n_errors: int
    network_up: bool | None
    control_reachable: bool | None


@dataclass(frozen=True, slots=True)
class FailingTarget:
    """A target whose latest measurement on one network was not reachable.

    The columns of :func:`~measurements.store.queries.failing_query`.
    """

    url: str
    category_code: str
    probe_asn: str
    probe_cc: str
    measured_at: datetime
    outcome: str
    """What people read (:class:`probe.outcome.Outcome`'s value)."""
    blocking: str | None
    accessible: bool | None
    mechanism: str | None
    confirmed: str | None
    failure: str | None
    """``dns_experiment_failure``, else ``http_experiment_failure`` (the failure that decided)."""
