"""Rounds: order kept, one target's bug isolated, active and open measurements bounded.

The bounds are checked twice: with scripted measurements (exact counts, no network), and with
real measurements of loopback servers — one that never answers (its measurements give their
slots up) and one that trickles a body (its measurements keep theirs).
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from probe import webconnectivity
from probe.model import Measurement, WebConnectivityTestKeys
from probe.rounds import activity, runner
from probe.rounds.targets import Target
from tests.servers.http_server import http_server
from tests.servers.tcp_server import tcp_server

CONFIG = webconnectivity.MeasureConfig(resolvers=(), allow_loopback=True).with_timeout(1.0)


def _targets(urls: list[str]) -> list[Target]:
    return [Target(url=url, category_code="NEWS") for url in urls]


@dataclass
class InFlight:
    """Wraps a measure function and records the most measurements in progress at once."""

    measure: Callable[..., Awaitable[Measurement]]
    now: int = 0
    peak: int = 0
    order: list[str] = field(default_factory=list)

    async def __call__(
        self, url: str, *, config: webconnectivity.MeasureConfig, on_progress: activity.Progress
    ) -> Measurement:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.order.append(url)
        try:
            return await self.measure(url, config=config, on_progress=on_progress)
        finally:
            self.now -= 1


def _scripted(busy: float = 0.0, silent: float = 0.0) -> Callable[..., Awaitable[Measurement]]:
    """A measurement that is *busy* (noting activity every 10 ms), then *silent*, then done."""

    async def measure(
        url: str, *, config: webconnectivity.MeasureConfig, on_progress: activity.Progress
    ) -> Measurement:
        loop = asyncio.get_running_loop()
        end = loop.time() + busy
        while loop.time() < end:
            on_progress()
            await asyncio.sleep(0.01)
        await asyncio.sleep(silent)
        if "bug" in url:
            raise KeyError("a programming error")
        return blank_measurement(url)

    return measure


def blank_measurement(url: str) -> Measurement:
    """A measurement of *url* with nothing in it, for scripted measure functions."""
    return Measurement(
        input=url,
        measurement_start_time="",
        test_start_time="",
        test_runtime=0.0,
        software_name="test",
        software_version="0",
        test_keys=WebConnectivityTestKeys(),
        measurement_uid=url,
    )


def _round(urls: list[str], measure: InFlight, **bounds: Any) -> list[runner.Result]:
    return asyncio.run(runner.measure_round(_targets(urls), config=CONFIG, measure=measure, **bounds))


def test_one_result_per_target_in_order_and_a_bug_costs_only_its_target() -> None:
    urls = [f"http://t{i}.example/" for i in range(5)] + ["http://bug.example/"]
    results = _round(urls, InFlight(_scripted(silent=0.01)), concurrency=2)
    assert [r.target.url for r in results] == urls
    assert [r.error for r in results[:5]] == [None] * 5
    assert results[5].measurement is None
    assert results[5].error == "KeyError: 'a programming error'"


def test_a_hook_that_raises_ends_the_round_with_no_measurement_left_running() -> None:
    flight = InFlight(_scripted(silent=0.3))
    urls = ["http://quick.example/"] + [f"http://t{i}.example/" for i in range(4)]

    def hook(result: runner.Result) -> None:
        raise RuntimeError(f"hook failed on {result.target.url}")

    async def main() -> set[asyncio.Task[object]]:
        quick = InFlight(_scripted())  # the first target ends at once, the others wait 0.3 s

        async def measure(url: str, **kwargs: Any) -> Measurement:
            return await (quick if "quick" in url else flight)(url, **kwargs)

        with pytest.raises(RuntimeError, match=r"hook failed on http://quick\.example/"):
            await runner.measure_round(_targets(urls), config=CONFIG, measure=measure, on_result=hook)
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[return-value]

    assert asyncio.run(main()) == set()
    assert flight.now == 0  # every other measurement was cancelled, and has ended


def test_busy_measurements_never_exceed_the_concurrency() -> None:
    flight = InFlight(_scripted(busy=0.3))
    _round([f"http://t{i}.example/" for i in range(8)], flight, concurrency=3, max_open=8, stall_after=0.1)
    assert flight.peak == 3


def test_silent_measurements_give_their_slots_up_up_to_max_open() -> None:
    flight = InFlight(_scripted(silent=0.5))
    _round([f"http://t{i}.example/" for i in range(12)], flight, concurrency=2, max_open=6, stall_after=0.05)
    assert flight.peak == 6


def test_max_open_equal_to_concurrency_is_a_strict_bound() -> None:
    flight = InFlight(_scripted(silent=0.2))
    _round([f"http://t{i}.example/" for i in range(6)], flight, concurrency=2, max_open=2, stall_after=0.01)
    assert flight.peak == 2


def test_a_measurement_that_falls_silent_later_gives_its_slot_up_then() -> None:
    # Busy for 0.15 s, then waiting 0.6 s: with stall_after 0.1 the slot frees at ~0.25 s.
    flight = InFlight(_scripted(busy=0.15, silent=0.6))
    _round(["http://a.example/", "http://b.example/"], flight, concurrency=1, max_open=2, stall_after=0.1)
    assert flight.peak == 2  # b started while a was still waiting


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"concurrency": 4, "max_open": 3}, "max_open must be at least concurrency"),
        ({"stall_after": 0}, "stall_after must be positive"),
    ],
)
def test_bad_bounds_are_programmer_errors(bounds: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _round(["http://a.example/"], InFlight(_scripted()), **bounds)


# Real measurements of loopback servers.


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    with tcp_server("accept") as port:  # accepts, then never says a word
        yield port


@pytest.fixture(scope="module")
def trickle_port() -> Iterator[int]:
    with http_server() as server:  # /trickle: one body byte every 0.2 s, forever
        yield server.port


def test_targets_that_never_answer_do_not_queue_behind_each_other(silent_port: int) -> None:
    flight = InFlight(webconnectivity.measure)
    urls = [f"http://127.0.0.1:{silent_port}/?n={i}" for i in range(4)]
    results = _round(urls, flight, concurrency=1, max_open=4, stall_after=0.3)
    assert flight.peak == 4
    assert [r.measurement.test_keys.http_experiment_failure for r in results if r.measurement] == [
        "generic_timeout_error"
    ] * 4


def test_a_body_still_arriving_keeps_its_slot(trickle_port: int) -> None:
    flight = InFlight(webconnectivity.measure)
    urls = [f"http://127.0.0.1:{trickle_port}/trickle?n={i}" for i in range(3)]
    results = _round(urls, flight, concurrency=1, max_open=4, stall_after=0.5)
    assert flight.peak == 1  # a byte every 0.2 s: never quiet for 0.5 s
    assert all(r.measurement is not None for r in results)


def test_the_file_limit_is_raised_to_fit_max_open_never_lowered() -> None:
    # In a child process: the limit is process-wide.
    script = """
import resource
from probe.rounds.runner import raise_file_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
print(raise_file_limit(64), resource.getrlimit(resource.RLIMIT_NOFILE)[0], raise_file_limit(1), hard)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    raised, in_force, again, hard = (int(word) for word in out.split())
    want = 64 * runner.SOCKETS_PER_MEASUREMENT + 256
    expected = want if hard == resource.RLIM_INFINITY else min(want, hard)
    assert raised == in_force == again == expected


def test_a_streamed_round_holds_at_most_max_open_targets_whatever_the_length_of_its_list() -> None:
    """Issue 12: tasks are made as targets start, and a target counts as in progress until the
    sink has taken its result — a slow sink holds the round back instead of results piling up."""
    urls = [f"http://t{i}.example/" for i in range(200)]
    taken: list[str] = []
    most_tasks = 0

    async def slow_sink(result: runner.Result) -> None:
        nonlocal most_tasks
        most_tasks = max(most_tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(0.002)
        taken.append(result.target.url)

    async def main() -> None:
        await runner.stream_round(
            _targets(urls), config=CONFIG, sink=slow_sink, measure=_scripted(), concurrency=2, max_open=4
        )

    asyncio.run(main())
    assert sorted(taken) == sorted(urls)
    assert most_tasks <= 4 + 1  # the round's own task and at most max_open targets


def test_a_sink_that_raises_ends_the_round_with_no_measurement_left_running() -> None:
    flight = InFlight(_scripted(silent=0.3))

    async def broken(result: runner.Result) -> None:
        raise OSError("disk full")

    async def main() -> set[asyncio.Task[object]]:
        quick = InFlight(_scripted())

        async def measure(url: str, **kwargs: Any) -> Measurement:
            return await (quick if "quick" in url else flight)(url, **kwargs)

        urls = ["http://quick.example/"] + [f"http://t{i}.example/" for i in range(4)]
        with pytest.raises(OSError, match="disk full"):
            await runner.stream_round(_targets(urls), config=CONFIG, sink=broken, measure=measure)
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[return-value]

    assert asyncio.run(main()) == set()
    assert flight.now == 0
