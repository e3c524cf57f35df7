"""The envelope every test beyond websites shares."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from probe import serialize
from probe.model import Summary
from probe.nettests.base import Clock, Context, finish


def test_finish_wraps_the_keys_in_a_df000_envelope_of_the_round() -> None:
    clock = Clock(started=datetime(2024, 11, 10, 11, 0, 3, 250000, tzinfo=UTC))
    context = Context(
        probe_asn="AS17557",
        probe_cc="PK",
        probe_network_name="PTCL",
        report_id="20241110T110000Z_tor_PK_17557_n1_abcdefghijklmnop",
        test_start_time=datetime(2024, 11, 10, 11, 0, 0, tzinfo=UTC),
    )
    m = finish(
        test_name="tor", test_version="0.4.0", input=None, test_keys={"targets": {}},
        summary=Summary(blocking="tcp_ip"), clock=clock, context=context,
    )  # fmt: skip
    doc = json.loads(serialize.to_json(m))
    assert doc["test_name"] == "tor" and doc["input"] is None
    assert doc["measurement_start_time"] == "2024-11-10 11:00:03"
    assert doc["test_start_time"] == "2024-11-10 11:00:00"
    assert doc["report_id"] == context.report_id
    assert doc["measurement_uid"].startswith("20241110110003.250000_PK_tor_")
    assert doc["probe_ip"] == "127.0.0.1"
    assert doc["test_keys"] == {"targets": {}}
    assert (m.target, m.probe_asn, m.summary.blocking) == ("tor", "AS17557", "tcp_ip")
    assert m.measurement_start_time == datetime(2024, 11, 10, 11, 0, 3, tzinfo=UTC)


def test_a_measurement_alone_gets_a_report_of_its_own() -> None:
    m = finish(
        test_name="signal", test_version="0.2.5", input=None, test_keys={}, summary=Summary(),
        clock=Clock(), context=Context(probe_cc="PK", probe_asn="AS9541"),
    )  # fmt: skip
    assert m.document["report_id"].split("_")[1:4] == ["signal", "PK", "9541"]
