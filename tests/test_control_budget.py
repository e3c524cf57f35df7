"""Issue 10: no verdict is lost to the wait for the control, nor to the helper's concurrency bound.

A loopback helper, loopback sites: some answer, some accept TCP and never say a word (the
sites that look blocked, and cost the helper its whole HTTP timeout). Before the fix, a round
of 200 such targets (40 hanging, 2 s steps) had 136 measurements at ``control_failure =
http_request_failed`` (the helper's 503 beyond its 32 slots), and a probe with faster step
timeouts than its helper gave up waiting before the helper answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from probe import control, webconnectivity
from probe.helper.app import HelperSettings, Limits, budget_of
from probe.helper.measure import ANSWER_MARGIN_S, BUDGET_HEADER, HelperConfig, control_budget
from probe.helper.policy import AddressPolicy
from probe.model import ControlResponse
from probe.rounds import runner
from probe.rounds.targets import Target
from probe.steps import tls
from tests.servers.helper_server import running_helper
from tests.servers.http_server import HTTPServer, http_server
from tests.servers.tcp_server import tcp_server

LOOPBACK = ("127.0.0.0/8",)


@pytest.fixture(scope="module")
def site() -> Iterator[HTTPServer]:
    with http_server() as server:
        yield server


@pytest.fixture(scope="module")
def hole() -> Iterator[int]:
    """A port that accepts and never answers."""
    with tcp_server("accept") as port:
        yield port


def helper_settings(*, step_s: float, max_concurrency: int = 32) -> HelperSettings:
    return HelperSettings(
        config=HelperConfig(dns_timeout=step_s, tcp_timeout=step_s, tls_timeout=step_s, http_timeout=step_s),
        policy=AddressPolicy.allowing(LOOPBACK),
        limits=Limits(max_concurrency=max_concurrency),
    )


def probe_config(helper: str, *, step_s: float, max_in_flight: int) -> webconnectivity.MeasureConfig:
    return webconnectivity.MeasureConfig(
        resolvers=(),
        allow_loopback=True,
        control_url=helper,
        control_max_in_flight=max_in_flight,
        public_networks=LOOPBACK,
        probe_asn="AS64500",  # no whoami: only the control calls reach the helper
        probe_cc="PK",
    ).with_timeout(step_s)


def test_the_wait_covers_the_helpers_budget() -> None:
    defaults = webconnectivity.MeasureConfig()
    assert HelperConfig().budget_s == 24.0  # DNS 4, then TCP 10 + TLS 10 beside HTTP 10
    assert webconnectivity.control_wait(defaults) == 24.0 + ANSWER_MARGIN_S == 27.0
    assert webconnectivity.control_wait(defaults.with_timeout(2)) == 6.0 + ANSWER_MARGIN_S
    assert control.answer_wait(dns_timeout=1, tcp_timeout=2, tls_timeout=3, http_timeout=7) == (
        control_budget(dns_timeout=1, tcp_timeout=2, tls_timeout=3, http_timeout=7) + ANSWER_MARGIN_S
    )
    # An explicit wait is kept as given.
    assert webconnectivity.control_wait(webconnectivity.MeasureConfig(control_timeout=5.0)) == 5.0


@pytest.mark.parametrize(
    ("asked", "budget"),
    [
        (None, 24.0),  # the configured steps' budget
        ("2.5", 2.5),
        ("0", 0.0),
        ("100", 25.0),  # never more than Limits.deadline_s
        ("nan", 24.0),
        ("inf", 24.0),
        ("-1", 24.0),
        ("soon", 24.0),
    ],
)
def test_the_helper_takes_the_budget_asked_within_its_deadline(asked: str | None, budget: float) -> None:
    assert budget_of(asked, HelperSettings()) == budget


def test_the_helper_answers_a_hanging_site_within_the_budget_asked(hole: int) -> None:
    # The helper's own HTTP timeout is 5 s; the probe asks for 0.5 s (its wait, 3.5 s, less
    # the margin) and gets the helper's view in time: the fetch timed out, the connect worked.
    request = control.build_request(f"http://127.0.0.1:{hole}/", ["127.0.0.1"], port=hole)
    context = tls.make_ssl_context(alpn=())
    with running_helper(helper_settings(step_s=5.0)) as helper:
        started = time.monotonic()
        response, failure = asyncio.run(
            control.call(helper, request, timeout=0.5 + ANSWER_MARGIN_S, ssl_context=context)
        )
        elapsed = time.monotonic() - started
    assert failure is None
    assert response is not None
    assert response.tcp_connect[f"127.0.0.1:{hole}"].status is True
    assert response.http_request.failure == "generic_timeout_error"
    assert elapsed < 2.5  # 0.5 s and the exchange; 5 s if the helper ignored the budget


def test_a_503_is_retried_within_the_wait(site: HTTPServer, hole: int) -> None:
    # One slot, held ~1 s by a hanging site; the other request meets 503 and is retried.
    context = tls.make_ssl_context(alpn=())
    hanging = control.build_request(f"http://127.0.0.1:{hole}/", ["127.0.0.1"], port=hole)
    fine = control.build_request(f"http://127.0.0.1:{site.port}/", ["127.0.0.1"], port=site.port)

    async def both(helper: str) -> list[tuple[object, str | None]]:
        first = asyncio.create_task(control.call(helper, hanging, timeout=4.0, ssl_context=context))
        await asyncio.sleep(0.3)  # the hanging one holds the slot
        # A wait of 6 s leaves 3 s to retry in (the rest is the answer's margin): room for the
        # ~1 s the hanging request holds the slot, however loaded the machine.
        second = await control.call(helper, fine, timeout=6.0, ssl_context=context)
        return [await first, second]

    with running_helper(helper_settings(step_s=1.0, max_concurrency=1)) as helper:
        (_, first_failure), (second, second_failure) = asyncio.run(both(helper))
    assert (first_failure, second_failure) == (None, None)
    assert isinstance(second, ControlResponse)
    assert second.http_request.status_code == 200


@pytest.mark.parametrize(
    ("helper_step_s", "max_concurrency"),
    [
        (0.5, 8),  # the helper measures with the probe's step timeouts
        (3.0, 8),  # the helper's own are slower: it measures within the budget the probe sent
    ],
)
def test_a_round_loses_no_verdict_to_the_control(
    site: HTTPServer, hole: int, helper_step_s: float, max_concurrency: int
) -> None:
    urls = [
        f"http://127.0.0.1:{hole if i % 5 == 0 else site.port}/?n={i}"
        for i in range(100)  # 20 hanging, spread through the list
    ]
    with running_helper(helper_settings(step_s=helper_step_s, max_concurrency=max_concurrency)) as helper:
        config = probe_config(helper, step_s=0.5, max_in_flight=max_concurrency)
        results = asyncio.run(
            runner.measure_round([Target(url) for url in urls], config=config, max_open=2 * max_concurrency)
        )
    seen = Counter(
        (
            f":{hole}/" in r.target.url,
            r.measurement.test_keys.control_failure if r.measurement else r.error,
            r.measurement.test_keys.mechanism if r.measurement else None,
        )
        for r in results
    )
    assert seen == {(True, None, "down"): 20, (False, None, "ok"): 80}


def test_the_header_is_sent_with_the_budget(site: HTTPServer) -> None:
    # What the probe asks for is its wait less the margin (seen by a page that echoes nothing
    # but records the request): the header name and value, exactly.
    request = control.build_request(f"http://127.0.0.1:{site.port}/", [], port=site.port)
    context = tls.make_ssl_context(alpn=())
    before = len(site.requests)
    helper = f"http://127.0.0.1:{site.port}/"
    asyncio.run(control.call(helper, request, timeout=ANSWER_MARGIN_S + 1.25, ssl_context=context))
    sent = {name.lower(): value for name, value in site.requests[before].headers}
    assert float(sent[BUDGET_HEADER.lower()]) == pytest.approx(1.25, abs=0.05)
