"""Measurements held as OONI documents (other tests, a collector's submissions) in the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from measurements.store.store import Store
from measurements.store.tables import MeasurementRecord, Target
from probe.mechanism import Mechanism
from probe.model import Summary
from probe.serialize import ooni_measurement


def _document(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "annotations": {},
        "data_format_version": "0.2.0",
        "input": None,
        "measurement_start_time": "2024-02-17 10:00:05",
        "measurement_uid": "20240217100005.000000_PK_telegram_0123456789abcdef",
        "probe_asn": "AS17557",
        "probe_cc": "PK",
        "probe_ip": "203.0.113.7",
        "probe_network_name": "PTCL",
        "report_id": "20240217T100000Z_telegram_PK_17557_n1_abcdefghijklmnop",
        "software_name": "reachprobe",
        "software_version": "0.1.0",
        "test_keys": {"telegram_tcp_blocking": True, "telegram_http_blocking": True},
        "test_name": "telegram",
        "test_runtime": 2.5,
        "test_start_time": "2024-02-17 10:00:00",
        "test_version": "0.3.1",
    }
    doc.update(overrides)
    return doc


def test_a_document_is_stored_with_its_summary_and_never_the_address(store: Store) -> None:
    summary = Summary(blocking="tcp_ip", accessible=False, mechanism=Mechanism.TCP_TIMEOUT,
                      tcp_failure="generic_timeout_error")  # fmt: skip
    m = ooni_measurement(_document(), summary=summary)
    round_id = store.begin_round(probe_asn="AS17557", probe_cc="PK")
    store.finish_round(round_id, [m])
    with store.snapshot() as conn:
        row = conn.execute(select(MeasurementRecord.__table__)).one()
        url = conn.execute(select(Target.url).where(Target.id == row.target_id)).scalar_one()
    assert (row.test_name, row.input, url) == ("telegram", "telegram", "telegram")
    assert row.measured_at == datetime(2024, 2, 17, 10, 0, 5, tzinfo=UTC)
    assert (row.blocking, row.accessible, row.mechanism, row.tcp_failure, row.outcome) == (
        "tcp_ip", False, "tcp.timeout", "generic_timeout_error", "blocked.anomaly",
    )  # fmt: skip
    body = json.loads(row.body)
    assert body["probe_ip"] == "127.0.0.1"
    assert "203.0.113.7" not in row.body
    assert body["input"] is None
    assert body["test_keys"] == {"telegram_tcp_blocking": True, "telegram_http_blocking": True}


def test_a_document_with_input_belongs_to_its_input() -> None:
    m = ooni_measurement(_document(input="https://web.telegram.org/", test_name="x"), summary=Summary())
    assert (m.target, m.test_name) == ("https://web.telegram.org/", "x")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("test_name", None, "test_name: missing"),
        ("measurement_uid", "", "measurement_uid: missing"),
        ("measurement_start_time", None, "measurement_start_time: missing"),
        ("measurement_start_time", "2024-02-17T10:00:05Z", "measurement_start_time: not YYYY-MM-DD hh:mm:ss"),
    ],
)
def test_a_malformed_document_is_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ooni_measurement(_document(**{field: value}), summary=Summary())
