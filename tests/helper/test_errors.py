"""Whatever goes wrong inside a request, the helper answers JSON and keeps serving.

An unexpected exception is the helper's bug, not the client's: 500 with ``{"error": …}``,
one log line naming the exception and where it was raised — no traceback, no client
address, no query string of the helper's URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from probe.helper.app import HelperSettings
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.steps import dns
from tests.servers.dns_server import Reply, ScriptedDNSServer
from tests.servers.helper_server import running_helper
from tests.servers.http_server import http_server

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])


@pytest.fixture
def resolver() -> Iterator[ScriptedDNSServer]:
    with ScriptedDNSServer({"site.test": Reply(a=("127.0.0.1",))}) as server:
        yield server


def broken_asn_lookup(ip: str) -> int:
    raise RuntimeError(f"lookup table corrupt near {ip}")


def test_an_unexpected_exception_is_a_json_500_and_one_log_line(
    resolver: ScriptedDNSServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = HelperConfig(resolvers=(dns.parse_resolver(resolver.address),), asn_of=broken_asn_lookup)
    caplog.set_level(logging.DEBUG)
    with http_server() as site, running_helper(HelperSettings(config=config, policy=LOOPBACK)) as helper:
        request = {"http_request": site.url("/", host="site.test"), "tcp_connect": []}
        with httpx.Client(timeout=20) as client:
            reply = client.post(helper + "?token=private-token", json=request)
            client_port = reply.extensions["network_stream"].get_extra_info("client_addr")[1]
        still_up = httpx.get(helper + "whoami", timeout=10)
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": "internal error"}
    assert still_up.status_code == 200
    # Everything the server side logged (the test's own httpx client logs its URLs).
    server_side = [record for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))]
    logged = "\n".join(record.getMessage() for record in server_side)
    errors = [record for record in server_side if record.levelno >= logging.WARNING]
    assert len(errors) == 1, logged
    line = errors[0].getMessage()
    assert errors[0].exc_info is None and "Traceback" not in caplog.text
    assert line.startswith("internal error on POST /: RuntimeError: lookup table corrupt near [scrubbed] (")
    assert "\n" not in line
    assert "private-token" not in logged
    assert str(client_port) not in logged and "127.0.0.1" not in line


UNFOLLOWABLE = ["mailto:x", "javascript:alert(1)", "data:,x", "about:blank", "tel:1", "http:foo"]


@pytest.mark.parametrize("location", UNFOLLOWABLE)
def test_a_redirect_to_a_location_that_cannot_be_fetched_is_answered_in_json(
    location: str, resolver: ScriptedDNSServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = HelperConfig(resolvers=(dns.parse_resolver(resolver.address),), http_timeout=3.0)
    with http_server() as site, running_helper(HelperSettings(config=config, policy=LOOPBACK)) as helper:
        url = site.url(f"/redirect?to={quote(location, safe='')}", host="site.test")
        reply = httpx.post(helper, json={"http_request": url, "tcp_connect": []}, timeout=20)
        still_up = httpx.get(helper + "whoami", timeout=10)
    assert reply.headers["content-type"] == "application/json", reply.text
    body = json.loads(reply.content)
    if reply.status_code == 200:  # the step records the redirect as a failure string
        assert isinstance(body["http_request"]["failure"], str)
    else:
        assert (reply.status_code, body) == (500, {"error": "internal error"})
    assert "Traceback" not in caplog.text
    assert still_up.status_code == 200
