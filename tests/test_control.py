"""The control client against a real loopback helper, and against helpers that misbehave."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from probe import control
from probe.helper.app import HelperSettings
from probe.helper.geo import Geo
from probe.helper.policy import AddressPolicy
from probe.model import ControlResponse
from probe.steps import tls
from probe.webconnectivity import MeasureConfig, measure
from tests.servers.helper_server import running_helper
from tests.servers.http_server import HTTPServer, http_server
from tests.servers.tcp_server import closed_port, tcp_server


def call(
    helper: str, url: str, addresses: list[str], port: int, timeout: float = 10.0
) -> tuple[ControlResponse | None, str | None]:
    request = control.build_request(url, addresses, port=port)
    context = tls.make_ssl_context(alpn=())
    return asyncio.run(control.call(helper, request, timeout=timeout, ssl_context=context))


@pytest.fixture(scope="module")
def site() -> Iterator[HTTPServer]:
    with http_server() as server:
        yield server


def test_call_returns_the_helpers_view(site: HTTPServer) -> None:
    settings = HelperSettings(policy=AddressPolicy.allowing(["127.0.0.0/8"]))
    with running_helper(settings) as helper:
        response, failure = call(helper, f"http://127.0.0.1:{site.port}/", ["127.0.0.1"], site.port)
    assert failure is None
    assert response is not None
    assert response.dns.addrs == ("127.0.0.1",)
    assert response.tcp_connect[f"127.0.0.1:{site.port}"].status is True
    assert response.http_request.status_code == 200
    assert response.http_request.title == "Hello & Wörld"


def test_the_request_is_oonis() -> None:
    request = control.build_request("https://x.com/", ["1.2.3.4", "2001:db8::1", "1.2.3.4"], port=443)
    assert request.tcp_connect == ("1.2.3.4:443", "[2001:db8::1]:443")
    assert request.http_request_headers["User-Agent"][0].startswith("Mozilla/5.0")


def test_a_refusal_is_http_request_failed() -> None:
    with running_helper(HelperSettings()) as helper:  # loopback is forbidden: 400
        assert call(helper, "http://127.0.0.1/", ["127.0.0.1"], 80) == (None, "http_request_failed")


def echo(site: HTTPServer, body: str) -> str:
    """A 'helper' answering *body* with status 200."""
    return f"http://127.0.0.1:{site.port}/echo?type=application/json&body={quote(body)}"


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        ("not json", "json_parse_error"),
        ("[]", "json_parse_error"),
        ('{"dns": {"failure": null, "addrs": []}}', "json_parse_error"),
        ('{"dns": 1, "tcp_connect": {}, "http_request": {}}', "json_parse_error"),
    ],
)
def test_hostile_bodies_are_control_failures(site: HTTPServer, body: str, failure: str) -> None:
    assert call(echo(site, body), "http://x.test/", [], 80) == (None, failure)


@pytest.mark.parametrize(
    ("path", "failure"),
    [
        ("/size/2000000", "json_parse_error"),  # larger than any control response
        ("/garbage", "http_protocol_error"),
        ("/reset", "connection_reset"),
        ("/nothing-here", "http_request_failed"),  # 404
    ],
)
def test_broken_helpers_are_control_failures(site: HTTPServer, path: str, failure: str) -> None:
    assert call(f"http://127.0.0.1:{site.port}{path}", "http://x.test/", [], 80) == (None, failure)


def test_unreachable_and_silent_helpers(site: HTTPServer) -> None:
    refused = call(f"http://127.0.0.1:{closed_port()}/", "http://x.test/", [], 80)
    assert refused == (None, "connection_refused")
    silent = call(f"http://127.0.0.1:{site.port}/trickle", "http://x.test/", [], 80, timeout=0.6)
    assert silent == (None, "generic_timeout_error")


def test_whoami(tmp_path: Path) -> None:
    geo = Geo(asn_of=lambda ip: 64500, cc_of=lambda ip: "PK")
    context = tls.make_ssl_context(alpn=())
    with running_helper(HelperSettings(geo=geo)) as helper:
        identity = asyncio.run(control.whoami(helper, timeout=5, ssl_context=context))
    assert identity is not None and (identity.probe_asn, identity.probe_cc) == ("AS64500", "PK")
    unreachable = f"http://127.0.0.1:{closed_port()}/"
    assert asyncio.run(control.whoami(unreachable, timeout=5, ssl_context=context)) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"probe_asn": "64500", "probe_cc": "PK"}',
        b'{"probe_asn": "AS1", "probe_cc": "pk"}',
        b"[1]",
        b"x",
        b"{}",
    ],
)
def test_whoami_rejects_malformed_answers(body: bytes) -> None:
    assert control.parse_whoami(body) is None


def test_whoami_keeps_the_network_and_the_address_to_scrub() -> None:
    body = b'{"probe_asn": "AS64500", "probe_cc": "PK", "probe_ip": "192.0.2.1", "other": 1}'
    assert control.parse_whoami(body) == control.Identity("AS64500", "PK", probe_ip="192.0.2.1")


@pytest.mark.parametrize(
    ("location", "failure"),
    [
        ("mailto:x", "unknown_failure: unsupported redirect scheme"),
        ("javascript:alert(1)", "unknown_failure: unsupported redirect scheme"),
        ("http:foo", "http_invalid_redirect_location_host"),
        ("http://[::1", "http_invalid_redirect_location_host"),
    ],
)
def test_the_helper_measures_a_hostile_redirect(site: HTTPServer, location: str, failure: str) -> None:
    """The helper follows redirects with the probe's step code: a bad Location is its finding too."""
    url = f"http://127.0.0.1:{site.port}/redirect-bytes?to={quote(location, safe='')}"
    with running_helper(HelperSettings(policy=AddressPolicy.allowing(["127.0.0.0/8"]))) as helper:
        response, control_failure = call(helper, url, ["127.0.0.1"], site.port)
    assert control_failure is None and response is not None
    assert response.http_request.failure == failure


def test_a_cancelled_measurement_leaves_no_control_task_behind(
    site: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A measurement cancelled while its control request and whoami hang at the helper: once
    the cancellation has reached the caller, both background tasks have ended (none pending,
    none left for the garbage collector to destroy)."""

    async def scenario(helper_port: int) -> list[asyncio.Task[object]]:
        config = MeasureConfig(
            control_url=f"http://127.0.0.1:{helper_port}/", allow_loopback=True, use_system_resolver=False
        )
        measurement = asyncio.create_task(measure(f"http://127.0.0.1:{site.port}/trickle", config=config))
        await asyncio.sleep(0.5)  # the hop is fetching; control and whoami wait for the helper
        measurement.cancel()
        with pytest.raises(asyncio.CancelledError):
            await measurement
        return [
            task for task in asyncio.all_tasks() if task is not asyncio.current_task() and not task.done()
        ]

    with tcp_server("accept") as helper_port:  # accepts and never answers
        left = asyncio.run(scenario(helper_port))
    gc.collect()
    assert [task.get_coro().__qualname__ for task in left] == []  # type: ignore[union-attr]
    assert "Task was destroyed but it is pending" not in caplog.text
