"""What every test beyond websites shares: who measures (:class:`Context`) and the envelope.

A test measures, builds its OONI ``test_keys`` (JSON-ready) and a
:class:`~probe.model.Summary` of what it found, and hands both to :func:`finish`, which wraps
them in the df-000-base envelope and returns the :class:`~probe.model.OONIMeasurement` the
store takes. The volunteer's address is never in it: ``probe_ip`` is OONI's marker, and a
test that saw its own address echoed (a server telling the client where it came from) scrubs
it with :func:`probe.privacy.scrub_text` before building its keys.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from probe import __version__, serialize
from probe.model import OONIMeasurement, Summary

SOFTWARE_NAME = "reachprobe"


@dataclass(frozen=True, slots=True)
class Context:
    """Who is measuring, and as part of what: the envelope fields a test does not decide."""

    probe_asn: str = "AS0"
    probe_cc: str = "ZZ"
    probe_network_name: str = ""
    report_id: str = ""
    """The round's report; ``""``: a new one for this measurement (``probe <test>`` alone)."""
    test_start_time: datetime | None = None
    """When the round began (aware UTC); ``None``: when this measurement began."""
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Clock:
    """A measurement's start: wall time for the envelope, monotonic time for ``t0``/``t``."""

    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    t_start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        """Seconds since the start (OONI's ``t``), to the microsecond."""
        return round(time.monotonic() - self.t_start, 6)


def finish(
    *,
    test_name: str,
    test_version: str,
    input: str | None,
    test_keys: Mapping[str, Any],
    summary: Summary,
    clock: Clock,
    context: Context,
    target: str | None = None,
) -> OONIMeasurement:
    """Wrap one test's *test_keys* in the df-000-base envelope.

    Args:
        test_name: OONI's name of the test (``telegram``, ``tor``, …).
        test_version: the version of OONI's spec whose methodology and keys the test follows.
        input: OONI's ``input`` (``None`` for tests without one, as OONI's).
        test_keys: JSON-ready; reachprobe's own keys carry the ``x_`` prefix.
        summary: what the measurement found, for the store's summary columns.
        clock: when it started.
        context: the round's envelope fields.
        target: the series it belongs to (:attr:`~probe.model.OONIMeasurement.target`);
            defaults to *input*, or *test_name*.
    """
    started = clock.started.replace(microsecond=0)  # OONI's start times have whole seconds
    asn, cc = context.probe_asn, context.probe_cc
    document: dict[str, Any] = {
        "annotations": {
            "engine_name": SOFTWARE_NAME,
            "engine_version": __version__,
            "platform": platform.system().lower(),
            **context.annotations,
        },
        "data_format_version": "0.2.0",
        "input": input,
        "measurement_start_time": serialize.ooni_time(started),
        "measurement_uid": serialize.new_measurement_uid(clock.started, test_name=test_name, probe_cc=cc),
        "probe_asn": asn,
        "probe_cc": cc,
        "probe_ip": "127.0.0.1",
        "probe_network_name": context.probe_network_name,
        "report_id": context.report_id
        or serialize.new_report_id(clock.started, test_name=test_name, probe_cc=cc, probe_asn=asn),
        "resolver_asn": "AS0",
        "resolver_ip": "",
        "resolver_network_name": "",
        "software_name": SOFTWARE_NAME,
        "software_version": __version__,
        "test_helpers": None,
        "test_keys": dict(test_keys),
        "test_name": test_name,
        "test_runtime": clock.elapsed(),
        "test_start_time": serialize.ooni_time(context.test_start_time or started),
        "test_version": test_version,
    }
    return serialize.ooni_measurement(document, target=target, summary=summary)
