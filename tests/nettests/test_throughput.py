"""Throughput: a bounded, timed download against a reference and the control, on loopback.

A small HTTP server paces its body (a chunk, then a pause: a shaped link) on one port and
sends it at full speed on another; the control is our real helper (its ``/x/throughput``).
Speeds on a loaded machine vary, so the tests assert what the pacing makes certain (the
shaped transfer is slower than its ceiling, the full-speed one far faster), never a timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from probe.helper.app import HelperSettings
from probe.helper.policy import AddressPolicy
from probe.mechanism import Mechanism
from probe.model import OONIMeasurement
from probe.nettests import throughput
from probe.nettests.base import Context
from tests.servers.helper_server import running_helper

SHAPED_CHUNK = 4096
SHAPED_PAUSE_S = 0.1
"""At most 40 KB/s: the shaped body's ceiling."""
BODY = 9 * 1024 * 1024


@contextlib.contextmanager
def media_server(*, shaped: bool) -> Iterator[int]:
    """Serve ``GET /…`` with a BODY-byte body on 127.0.0.1; yield the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n".encode())
            sent, chunk = 0, b"m" * (SHAPED_CHUNK if shaped else 256 * 1024)
            with contextlib.suppress(OSError):
                while sent < BODY and not stop.is_set():
                    conn.sendall(chunk[: BODY - sent])
                    sent += len(chunk)
                    if shaped:
                        time.sleep(SHAPED_PAUSE_S)

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.fixture(scope="module")
def shaped() -> Iterator[str]:
    with media_server(shaped=True) as port:
        yield f"http://127.0.0.1:{port}/media/large.bin"


@pytest.fixture(scope="module")
def fast() -> Iterator[str]:
    with media_server(shaped=False) as port:
        yield f"http://127.0.0.1:{port}/reference.bin"


def run(url: str, *, reference_url: str | None = None, control_url: str | None = None) -> OONIMeasurement:
    config = throughput.ThroughputConfig(
        max_bytes=1024 * 1024, max_seconds=1.0, allow_loopback=True, reference_url=reference_url,
        control_url=control_url,
    )  # fmt: skip
    return asyncio.run(
        throughput.measure(url, context=Context(probe_asn="AS45669", probe_cc="PK"), config=config)
    )


def test_a_shaped_host_against_the_volunteers_line_is_throttled_by_a_measured_ratio(
    shaped: str, fast: str
) -> None:
    m = run(shaped, reference_url=fast)
    keys = m.document["test_keys"]
    assert (m.test_name, m.target) == ("throughput", "throughput:" + shaped)
    assert keys["x_bytes_per_second"] < SHAPED_CHUNK / SHAPED_PAUSE_S * 1.5  # the pacing's ceiling
    assert keys["x_reference"]["bytes_per_second"] > 10 * keys["x_bytes_per_second"]
    ratio = keys["x_bytes_per_second"] / keys["x_reference"]["bytes_per_second"]
    assert keys["x_ratio_to_reference"] == float(f"{ratio:.4g}")
    assert keys["x_ratio_to_reference"] < 0.2 and keys["x_ratio_to_control"] is None
    assert (keys["x_throttled"], keys["x_blocking"], keys["x_mechanism"]) == (
        True,
        "http-diff",
        "http.throttle",
    )
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (
        "http-diff",
        False,
        Mechanism.HTTP_THROTTLE,
    )
    samples = keys["x_samples"]
    assert len(samples) >= 3 and all(b1 > b0 for (_, b0), (_, b1) in itertools.pairwise(samples))
    target, reference = keys["requests"]
    # Time ran out while the body flowed: a bound, not a failure; the bytes are counted, never kept.
    assert (target["failure"], target["response"]["body"], target["response"]["body_is_truncated"]) == (
        None,
        "",
        True,
    )
    assert target["x_body_bytes_received"] == samples[-1][1]
    assert reference["x_body_bytes_received"] == 1024 * 1024  # its max_bytes, reached
    assert keys["x_bytes_received"] >= samples[-1][1] + 1024 * 1024
    assert keys["x_max_bytes"] == 1024 * 1024
    assert [c["status"]["success"] for c in keys["tcp_connect"]] == [True, True]


def test_the_same_speed_as_the_reference_is_not_throttled(shaped: str) -> None:
    # Both paced alike (full-speed loopback transfers last milliseconds: too noisy to compare).
    m = run(shaped, reference_url=shaped)
    keys = m.document["test_keys"]
    assert keys["x_throttled"] is False
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (False, True, Mechanism.OK)


def test_without_a_comparison_there_is_no_verdict(shaped: str) -> None:
    m = run(shaped)
    keys = m.document["test_keys"]
    assert keys["x_bytes_per_second"] is not None and keys["x_throttled"] is None
    assert (m.summary.blocking, m.summary.mechanism, m.summary.control_failure) == (
        None, Mechanism.CONTROL_NONE, "control_not_configured",
    )  # fmt: skip


def test_a_host_slow_for_the_control_too_is_not_called_throttled(shaped: str, fast: str) -> None:
    settings = HelperSettings(policy=AddressPolicy.allowing(["127.0.0.0/8"]))
    with running_helper(settings) as helper:
        m = run(shaped, reference_url=fast, control_url=helper)
    keys = m.document["test_keys"]
    assert keys["x_ratio_to_reference"] < 0.2  # slow against the volunteer's line ...
    assert keys["x_control"]["failure"] is None
    assert keys["x_control"]["bytes_per_second"] < SHAPED_CHUNK / SHAPED_PAUSE_S * 1.5  # ... and from outside
    assert keys["x_ratio_to_control"] > 0.2
    assert (keys["x_throttled"], m.summary.mechanism) == (False, Mechanism.OK)


def test_a_refused_connect_is_left_to_the_web_test() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = run(f"http://127.0.0.1:{port}/x", reference_url=f"http://127.0.0.1:{port}/y")
    assert m.document["test_keys"]["tcp_connect"][0]["status"]["failure"] == "connection_refused"
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (
        None,
        False,
        Mechanism.TCP_REFUSED,
    )


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"nope", 400, "not JSON"),
        (b'{"url": 3}', 400, "url: expected a string"),
        (b'{"url": "ftp://x/"}', 400, "url: "),
        (b'{"url": "http://x.example/", "max_bytes": 0}', 400, "max_bytes: expected a positive integer"),
        (
            b'{"url": "http://x.example/", "max_seconds": true}',
            400,
            "max_seconds: expected a positive number",
        ),
    ],
)
def test_the_helper_route_refuses_bad_requests(body: bytes, status: int, error: str) -> None:
    with running_helper(HelperSettings()) as helper:
        response = httpx.post(helper + "x/throughput", content=body, timeout=10)
    assert response.status_code == status
    assert response.json()["error"].startswith(error)


def test_the_helper_never_downloads_from_loopback_unless_allowed(fast: str) -> None:
    with running_helper(HelperSettings()) as helper:
        response = httpx.post(helper + "x/throughput", json={"url": fast}, timeout=10)
    assert response.json() == {"bytes_per_second": None, "body_bytes": 0, "failure": "forbidden_target"}


def test_the_helper_bounds_what_it_is_asked(fast: str) -> None:
    settings = HelperSettings(policy=AddressPolicy.allowing(["127.0.0.0/8"]))
    with running_helper(settings) as helper:
        asked = {"url": fast, "max_bytes": 10**12, "max_seconds": 10**6}
        answer = json.loads(httpx.post(helper + "x/throughput", json=asked, timeout=60).content)
    assert answer["failure"] is None
    assert answer["body_bytes"] == 8 * 1024 * 1024 < BODY  # MAX_BYTES, whatever was asked
