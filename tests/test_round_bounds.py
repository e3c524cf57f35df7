"""The round's bounds, seen from the servers: transfers never compete beyond the concurrency,
and silent targets wait side by side instead of queueing for the active slots.

Real measurements of loopback servers that count, on their side, the responses they are
sending at once and the silent connections they hold at once: structural figures, not wall
clock bounds.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from measurements.store.store import Store, open_store
from probe import webconnectivity
from probe.model import Measurement
from probe.rounds import runner, service
from probe.rounds import settings as rounds_settings
from probe.rounds.settings import Measure, Settings, Targets
from probe.rounds.targets import Target
from tests.servers.http_server import http_server
from tests.servers.tcp_server import connection_server
from tests.test_runner import blank_measurement

BODY_CHUNKS = 6
CHUNK_GAP = 0.03
"""A body arrives in chunks 30 ms apart: a transfer lasts ~0.15 s, so transfers overlap."""


@dataclass
class Peak:
    """A count of things in progress on the server's side, and the most there were at once."""

    now: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def one(self) -> Iterator[None]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            yield
        finally:
            with self.lock:
                self.now -= 1


def _read_head(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk


def _trickling(transfers: Peak) -> Callable[[socket.socket], None]:
    """Answers at once, then sends its body in chunks; counts the responses being sent."""

    def handle(conn: socket.socket) -> None:
        _read_head(conn)
        body = b"x" * 100
        with transfers.one():
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (BODY_CHUNKS * len(body)))
            for _ in range(BODY_CHUNKS):
                time.sleep(CHUNK_GAP)
                conn.sendall(body)
        conn.recv(1)  # until the client closes

    return handle


def _quick(conn: socket.socket) -> None:
    """Answers at once, the whole body in one send."""
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn.recv(1)


def _silent(held: Peak) -> Callable[[socket.socket], None]:
    """Accepts and never says a word; counts the connections it holds at once."""

    def handle(conn: socket.socket) -> None:
        with held.one():
            while conn.recv(4096):  # the request, then nothing until the client gives up
                pass

    return handle


def _round(urls: list[str], *, timeout: float, **bounds: Any) -> list[runner.Result]:
    config = webconnectivity.MeasureConfig(resolvers=(), allow_loopback=True).with_timeout(timeout)
    targets = [Target(url=url) for url in urls]
    return asyncio.run(runner.measure_round(targets, config=config, **bounds))


def test_transfers_never_exceed_the_concurrency_among_silent_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one way past the bound, by design: a measurement judged stalled that hears from the
    # network again takes a slot at once (its timings must not wait). Here no answering server
    # is quiet for long (chunks every 30 ms), but a loaded machine can make one look stalled;
    # each such return is counted (a spy on the real gate), and only those may pass the bound.
    over_the_bound = []
    take_over = runner._Gate.take_over

    def counted(gate: Any) -> None:
        if gate.taken >= gate._size:
            over_the_bound.append(gate.taken + 1)
        take_over(gate)

    monkeypatch.setattr(runner._Gate, "take_over", counted)
    transfers, held = Peak(), Peak()
    with (
        connection_server(_trickling(transfers), threaded=True) as web,
        connection_server(_silent(held), threaded=True) as hole,
    ):
        answering = [f"http://127.0.0.1:{web}/?n={i}" for i in range(24)]
        silent = [f"http://127.0.0.1:{hole}/?n={i}" for i in range(12)]
        urls = [u for pair in zip(answering, silent, strict=False) for u in pair] + answering[12:]
        results = _round(urls, timeout=1.5, concurrency=3, max_open=32)
    failures = [r.measurement.test_keys.http_experiment_failure for r in results if r.measurement]
    assert failures == [None if f":{web}/" in u else "generic_timeout_error" for u in urls]
    assert transfers.most >= 3  # the bound is reached ...
    assert transfers.most <= max([3, *over_the_bound])  # ... and passed only by a return from a stall
    assert held.most > 3  # silent targets gave their slots up meanwhile


def test_silent_targets_wait_side_by_side_once_the_round_knows_its_pace() -> None:
    held = Peak()
    with (
        connection_server(_quick, threaded=True) as web,
        connection_server(_silent(held), threaded=True) as hole,
    ):
        # Answering targets first (the round learns how soon its network answers: within
        # milliseconds here), then silent ones: each holds its slot STALL_FLOOR (0.1 s), so
        # all 12 are open within ~0.6 s, before the first one's 1.5 s timeout. Held the
        # ceiling (stall_after, 0.5 s), two slots would let 6 start before the first ended.
        urls = [f"http://127.0.0.1:{web}/?n={i}" for i in range(runner.PACE_MIN + 2)]
        urls += [f"http://127.0.0.1:{hole}/?n={i}" for i in range(12)]
        results = _round(urls, timeout=1.5, concurrency=2, max_open=16)
    failures = [r.measurement.test_keys.http_experiment_failure for r in results if r.measurement]
    assert failures == [None] * (runner.PACE_MIN + 2) + ["generic_timeout_error"] * 12
    assert held.most == 12


def test_a_measurement_back_from_a_stall_takes_a_slot_and_holds_new_targets_back() -> None:
    # Two slots. a waits 0.6 s for its first answer (stalled after 0.1 s: the pace learned
    # from the quick targets), then is at work for 0.5 s; b (from 0 s) and c (from a's stall,
    # ~0.1 s) are at work for 0.8 s. Back at 0.6 s, a takes a third slot at once; d then waits
    # until two of the three have ended (c's end), not only one (b's end, 0.1 s earlier).
    starts: dict[str, float] = {}
    at_work: dict[str, tuple[float, float]] = {}

    async def measure(url: str, *, config: object, on_progress: Callable[[], None]) -> Measurement:
        loop = asyncio.get_running_loop()
        starts[url] = loop.time()
        name = url.split("//")[1].split(".")[0]
        if name.startswith("quick"):
            on_progress()
            return blank_measurement(url)
        if name == "a":
            await asyncio.sleep(0.6)
        begin = loop.time()
        while loop.time() - begin < (0.5 if name == "a" else 0.8):
            on_progress()
            await asyncio.sleep(0.01)
        at_work[name] = (begin, loop.time())
        return blank_measurement(url)

    quick = [f"http://quick{i}.example/" for i in range(runner.PACE_MIN)]
    urls = [*quick, "http://a.example/", "http://b.example/", "http://c.example/", "http://d.example/"]
    config = webconnectivity.MeasureConfig(resolvers=())
    asyncio.run(
        runner.measure_round(
            [Target(url=u) for u in urls], config=config, measure=measure, concurrency=2, max_open=8
        )
    )
    a_begin, a_end = at_work["a"]
    _, b_end = at_work["b"]
    c_begin, c_end = at_work["c"]
    assert c_begin < a_begin < min(b_end, c_end)  # a came back while b and c were at work
    second_end = sorted((a_end, b_end, c_end))[1]
    assert starts["http://d.example/"] >= second_end - 0.005


class _SlowStore:
    """A real store whose batch writes take a second (an SD card), counting what was written."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.written = 0
        self.lock = threading.Lock()

    def begin_round(self, **kwargs: Any) -> int:
        return self._store.begin_round(**kwargs)

    def add_measurements(self, round_id: int, measurements: Any, **kwargs: Any) -> None:
        time.sleep(1.0)
        self._store.add_measurements(round_id, measurements, **kwargs)
        with self.lock:
            self.written += len(measurements)

    def finish_round(self, round_id: int, measurements: Any, **kwargs: Any) -> None:
        self._store.finish_round(round_id, measurements, **kwargs)

    def mark_interrupted(self, round_id: int | None = None) -> int:
        return self._store.mark_interrupted(round_id)


def test_a_store_that_falls_behind_holds_the_round_back_not_its_results(tmp_path: Path) -> None:
    # 120 answering targets, 2 active and 64 open at once, a store that takes 1 s a batch:
    # finished results waiting for it stay within the slots and the writer's room, not max_open.
    most = 0
    with http_server() as web, open_store(f"sqlite:///{tmp_path / 'm.sqlite3'}") as real:
        slow = _SlowStore(real)
        urls = [f"http://127.0.0.1:{web.port}/?n={i}" for i in range(120)]
        settings = Settings(
            measure=Measure(concurrency=2, max_open=64, resolvers=(), allow_loopback=True),
            targets=Targets(lists=()),
            tests=rounds_settings.Tests.web_only(),  # the families would reach the real services
        )
        plan = service.plan_round(settings, targets=[Target(url=u) for u in urls])
        seen = 0

        def count(result: runner.Result) -> None:
            nonlocal seen, most
            seen += 1
            with slow.lock:
                most = max(most, seen - slow.written)

        report = asyncio.run(service.run_round(plan, slow, on_result=count))
    assert report.n_measured == 120
    assert 2 < most <= 2 + service.WRITE_BEHIND
