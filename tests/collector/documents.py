"""Requests and measurements as probes send them: the spec's examples and OONI's Web Connectivity.

``SPEC_OPEN`` and ``SPEC_MEASUREMENT`` are bk-003-collector's own examples (§3.1, §3.2: the
``mkcollector`` client of Measurement Kit), byte for byte in their fields; the tests move the
example's 2018 times to now where the collector's time window would refuse them, and say so.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, Final

from probe.model import OONI_TIME_FORMAT

SPEC_OPEN: Final[dict[str, Any]] = {
    "data_format_version": "0.2.0",
    "format": "json",
    "probe_asn": "AS30722",
    "probe_cc": "IT",
    "software_name": "mkcollector",
    "software_version": "0.0.1",
    "test_name": "dummy",
    "test_version": "0.0.1",
}

SPEC_MEASUREMENT: Final[dict[str, Any]] = {
    "annotations": {},
    "data_format_version": "0.2.0",
    "id": "bdd20d7a-bba5-40dd-a111-9863d7908572",
    "input": None,
    "input_hashes": [],
    "measurement_start_time": "2018-11-01 15:33:20",
    "options": [],
    "probe_asn": "AS0",
    "probe_cc": "ZZ",
    "probe_city": None,
    "probe_ip": "127.0.0.1",
    "report_id": "20190313T131942Z_AS30722_dU70oZPs80d5E21z8Ef6GXel6CwsdLoXvDk44Fsajv1LDLOIeI",
    "software_name": "mkcollector",
    "software_version": "0.0.1",
    "test_helpers": [],
    "test_keys": {"client_resolver": "91.80.37.104"},
    "test_name": "dummy",
    "test_runtime": 5.0565230846405,
    "test_start_time": "2018-11-01 15:33:17",
    "test_version": "0.0.1",
}
"""§3.2's example. Its network (AS0, ZZ) is not the report's of §3.1 (AS30722, IT): the
example report was opened by a different call; :func:`spec_measurement` aligns them."""


SESSION_START: Final = datetime.now(UTC).replace(microsecond=0)
"""The default measurement time: one instant for the session, so a re-built document is the same."""


def ooni_time(when: datetime | None = None) -> str:
    return (when or SESSION_START).astimezone(UTC).strftime(OONI_TIME_FORMAT)


def spec_measurement(report_id: str, *, when: datetime | None = None, **changes: Any) -> dict[str, Any]:
    """§3.2's example submitted to *report_id* (opened with :data:`SPEC_OPEN`), measured *when*."""
    doc = copy.deepcopy(SPEC_MEASUREMENT)
    doc.update(
        report_id=report_id,
        probe_asn=SPEC_OPEN["probe_asn"],
        probe_cc=SPEC_OPEN["probe_cc"],
        measurement_start_time=ooni_time(when),
        test_start_time=ooni_time(when),
    )
    doc.update(changes)
    return doc


def open_request(**changes: Any) -> dict[str, Any]:
    return {**SPEC_OPEN, **changes}


def web_connectivity(
    report_id: str,
    url: str,
    *,
    asn: str = "AS17557",
    cc: str = "PK",
    when: datetime | None = None,
    blocking: bool | str | None = False,
    accessible: bool | None = True,
    tcp_failure: str | None = None,
    **keys: Any,
) -> dict[str, Any]:
    """A Web Connectivity measurement as OONI Probe (probe-cli 3.x) writes it, trimmed to what
    the verdict reads: one lookup, one connect, and the verdict keys (no ``x_`` key: not ours)."""
    failed = tcp_failure is not None
    test_keys: dict[str, Any] = {
        "agent": "redirect",
        "client_resolver": "192.0.2.53",
        "retries": None,
        "socksproxy": None,
        "queries": [{
            "answer_type": "A", "answers": [{"answer_type": "A", "ipv4": "104.244.42.65", "ttl": None}],
            "engine": "system", "failure": None, "hostname": url.split("/")[2], "query_type": "A",
            "resolver_address": "", "t": 0.01, "tags": [],
        }],
        "tcp_connect": [{
            "ip": "104.244.42.65", "port": 443, "t": 0.05, "tags": [],
            "status": {"blocked": failed, "failure": tcp_failure, "success": not failed},
        }],
        "tls_handshakes": [],
        "requests": [],
        "control_failure": None,
        "dns_experiment_failure": None,
        "http_experiment_failure": tcp_failure,
        "dns_consistency": "consistent",
        "blocking": blocking,
        "accessible": accessible,
    }  # fmt: skip
    test_keys.update(keys)
    started = ooni_time(when)
    return {
        "annotations": {"architecture": "amd64", "engine_name": "ooniprobe-engine", "platform": "linux"},
        "data_format_version": "0.2.0",
        "extensions": {"dnst": 0, "httpt": 0, "netevents": 0, "tcpconnect": 0, "tlshandshake": 0},
        "input": url,
        "measurement_start_time": started,
        "probe_asn": asn,
        "probe_cc": cc,
        "probe_ip": "203.0.113.9",
        "probe_network_name": f"Network {asn}",
        "report_id": report_id,
        "resolver_asn": asn,
        "resolver_ip": "192.0.2.53",
        "resolver_network_name": f"Network {asn}",
        "software_name": "ooniprobe-cli",
        "software_version": "3.22.0",
        "test_helpers": {"backend": {"address": "https://th.example", "type": "https"}},
        "test_keys": test_keys,
        "test_name": "web_connectivity",
        "test_runtime": 1.25,
        "test_start_time": started,
        "test_version": "0.4.3",
    }
