"""The volunteer's addresses never leave a measurement: the scrubber, whoami, and the wiring."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json

import pytest

from probe import control, privacy, webconnectivity
from probe.helper.app import HelperSettings
from probe.helper.geo import Geo
from probe.model import (
    ControlDNS,
    ControlHTTPRequest,
    ControlResponse,
    ControlTCPConnect,
    DNSAnswer,
    DNSQuery,
    HTTPRequest,
    HTTPResponse,
    HTTPTransaction,
    Measurement,
    PeerCertificate,
    TCPConnect,
    TCPStatus,
    TLSHandshake,
    WebConnectivityTestKeys,
)
from probe.rounds import service
from probe.serialize import to_json
from probe.steps import tls
from tests.servers.echo_server import echo_server
from tests.servers.helper_server import running_helper

OURS = "10.0.0.1"
OURS_V6 = "2001:db8:1::5"
BOTH = (OURS, OURS_V6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("you are 10.0.0.1", "you are [scrubbed]"),
        ("10.0.0.1.", "[scrubbed]."),
        ("10.0.0.1:80 and http://10.0.0.1/x", "[scrubbed]:80 and http://[scrubbed]/x"),
        # Overlapping addresses are not ours: they stay whole.
        (
            "10.0.0.12 110.0.0.1 10.0.0.10 1.10.0.0.1 10.0.0.1.5",
            "10.0.0.12 110.0.0.1 10.0.0.10 1.10.0.0.1 10.0.0.1.5",
        ),
        ("010.000.000.001", "[scrubbed]"),
        ("host-10-0-0-1.isp.example 10-0-0-12", "host-[scrubbed].isp.example 10-0-0-12"),
        ("client=10.0.0.1;10.0.0.1,10.0.0.1", "client=[scrubbed];[scrubbed],[scrubbed]"),
        # IPv6: compressed, expanded, upper case, bracketed, percent-encoded, after a label.
        ("2001:db8:1::5", "[scrubbed]"),
        ("2001:0db8:0001:0000:0000:0000:0000:0005", "[scrubbed]"),
        ("2001:DB8:1:0:0:0:0:5", "[scrubbed]"),
        ("[2001:db8:1::5]:443", "[[scrubbed]]:443"),
        ("ip=2001%3Adb8%3A1%3A%3A5&x=1", "ip=[scrubbed]&x=1"),
        ("ip:2001:db8:1::5 x", "ip:[scrubbed] x"),
        ("dial 2001:db8:1::5: refused", "dial [scrubbed]: refused"),
        ("Source:2001:db8:1::5 code:2001:db8:1::5", "Source:[scrubbed] code:[scrubbed]"),
        ("2001:db8:1::5%eth0 http://[2001:db8:1::5%25eth0]/", "[scrubbed]%eth0 http://[[scrubbed]%25eth0]/"),
        ("2001:db8:1::50 2001:db8:1::5:1 2001:db8:11::5", "2001:db8:1::50 2001:db8:1::5:1 2001:db8:11::5"),
        # IPv6 forms that carry our IPv4 address.
        (
            "::ffff:10.0.0.1 ::FFFF:a00:1 64:ff9b::a00:1 2002:a00:1::1",
            "[scrubbed] [scrubbed] [scrubbed] [scrubbed]",
        ),
        ("::ffff:10.0.0.12", "::ffff:10.0.0.12"),
        # Times, MACs, loopback and others' addresses are data.
        (
            "12:30:45 aa:bb:cc:dd:ee:ff 127.0.0.1 ::1 93.184.215.14",
            "12:30:45 aa:bb:cc:dd:ee:ff 127.0.0.1 ::1 93.184.215.14",
        ),
    ],
)
def test_scrub_text(text: str, expected: str) -> None:
    assert privacy.scrub_text(text, BOTH) == expected
    assert privacy.scrub_bytes(text.encode(), BOTH) == expected.encode()


def test_scrub_bytes_keeps_what_is_not_text() -> None:
    body = b"\xff\xfe<title>10.0.0.1</title>\x00\x80 10.0.0.12"
    assert privacy.scrub_bytes(body, [OURS]) == b"\xff\xfe<title>[scrubbed]</title>\x00\x80 10.0.0.12"


def test_a_mapped_address_from_a_dual_stack_server_scrubs_the_ipv4_form() -> None:
    assert privacy.scrub_text("you are 10.0.0.1", ["::ffff:10.0.0.1"]) == "you are [scrubbed]"


def test_loopback_is_never_scrubbed() -> None:
    # 127.0.0.1 is probe_ip's marker and a censor's answer: data, even if someone passes it.
    assert (
        privacy.scrub_text("127.0.0.1 ::1 0.0.0.0", ["127.0.0.1", "::1", "0.0.0.0"])
        == "127.0.0.1 ::1 0.0.0.0"
    )
    found = privacy.volunteer_addresses(known=["127.0.0.1", "::1", "192.0.2.9"], toward=["127.0.0.1", "::1"])
    assert ipaddress.ip_address("192.0.2.9") in found
    assert not any(address.is_loopback for address in found)


def test_a_round_gathers_the_addresses_once_a_second_not_once_a_measurement() -> None:
    now = [100.0]
    gathered = privacy.volunteer_addresses(known=["192.0.2.9"])
    addresses = privacy.RoundAddresses(known=["192.0.2.9"], clock=lambda: now[0])
    first = addresses.get()
    assert first == gathered
    assert addresses.get() is first  # within the second: what was gathered
    whoami = ipaddress.ip_address("198.51.100.7")
    assert addresses.get(extra=[str(whoami), "127.0.0.1"]) == first | {whoami}
    now[0] += privacy.ADDRESSES_MAX_AGE
    assert addresses.get() is not first  # a second old: gathered again (an address may have changed)
    assert addresses.get() == gathered
    assert "192.0.2.9" not in repr(addresses)


def _echoing_measurement() -> Measurement:
    """A measurement of a page that echoed the volunteer's address everywhere it could."""
    site, other = "93.184.215.14", "10.0.0.12"  # the site's address, and a near miss of ours
    redirect = HTTPTransaction(
        address=f"{site}:443",
        request=HTTPRequest("https://example.com/", "GET", (("Host", "example.com"),)),
        response=HTTPResponse(
            302,
            (("Location", f"https://example.com/page?ip={OURS}"), ("X-Client-IP", OURS)),
            b"",
            False,
            0,
            "",
        ),
        failure=None,
        t0=0.1,
        t=0.2,
    )
    body = f"<title>You are {OURS}</title><p>{OURS} {other} [{OURS_V6}]</p>".encode()
    final = HTTPTransaction(
        address=f"{site}:443",
        request=HTTPRequest(f"https://example.com/page?ip={OURS}", "GET", (("Cookie", f"c={OURS}"),)),
        response=HTTPResponse(
            200,
            (("Set-Cookie", f"client={OURS}"), (f"X-Seen-{OURS}", "1")),
            body,
            False,
            len(body),
            f"You are {OURS}",
        ),
        failure=f"unknown_failure: read from {OURS}:51234",
        t0=0.3,
        t=0.4,
    )
    cert = PeerCertificate(f"CN={OURS}".encode(), f"CN={OURS}", "CN=CA", "2024", "2025", (OURS,), "ab")
    keys = WebConnectivityTestKeys(
        queries=(
            DNSQuery(
                "udp",
                "8.8.8.8:53",
                "example.com",
                "A",
                (DNSAnswer("A", ipv4=site), DNSAnswer("A", ipv4=OURS)),
                "NOERROR",
                None,
                0,
                0.01,
            ),
        ),
        tcp_connect=(
            TCPConnect(site, 443, TCPStatus(True, None), 0.01, 0.02),
            TCPConnect(other, 443, TCPStatus(False, f"refused by {OURS}"), 0, 1),
        ),
        tls_handshakes=(
            TLSHandshake(f"{site}:443", "example.com", "", "", "TLSv1.3", (cert,), None, 0.02, 0.03),
        ),
        requests=(final, redirect),
        control=ControlResponse(
            tcp_connect={
                f"{OURS}:443": ControlTCPConnect(True, None),
                f"{site}:443": ControlTCPConnect(True, None),
            },
            tls_handshake={},
            http_request=ControlHTTPRequest(10, None, "Example", {"X-Client-IP": "203.0.113.50"}, 200),
            dns=ControlDNS(None, (site,)),
            ip_info={},
        ),
        http_experiment_failure=f"unknown_failure: {OURS}",
        blocking=False,
        accessible=True,
    )
    return Measurement(
        input="https://example.com/",
        measurement_start_time="2024-01-20 10:00:00",
        test_start_time="2024-01-20 10:00:00",
        test_runtime=1.0,
        software_name="reachprobe",
        software_version="0.1.0",
        test_keys=keys,
        measurement_uid="20240120100000.000000_ZZ_webconnectivity_0000000000000001",
        annotations={"note": OURS},
    )


def test_scrub_reaches_every_field_and_spares_the_evidence() -> None:
    m = _echoing_measurement()
    assert to_json(m).count(OURS + '"') + to_json(m).count(OURS + " ") > 0  # the fixture leaks

    scrubbed = privacy.scrub(m, BOTH)

    text = to_json(scrubbed)
    assert OURS not in text.replace("10.0.0.12", "")
    assert OURS_V6 not in text
    assert "10.0.0.12" in text and "93.184.215.14" in text and "203.0.113.50" in text
    assert '"probe_ip": "127.0.0.1"' in text
    final, redirect = scrubbed.test_keys.requests
    assert final.request.url == "https://example.com/page?ip=[scrubbed]"
    assert redirect.response is not None and dict(redirect.response.headers_list) == {
        "Location": "https://example.com/page?ip=[scrubbed]",
        "X-Client-IP": "[scrubbed]",
    }
    assert final.response is not None
    assert final.response.title == "You are [scrubbed]"
    assert final.response.headers_list == (("Set-Cookie", "client=[scrubbed]"), ("X-Seen-[scrubbed]", "1"))
    assert final.response.body == b"<title>You are [scrubbed]</title><p>[scrubbed] 10.0.0.12 [[scrubbed]]</p>"
    assert final.response.body_length == len(m.test_keys.requests[0].response.body)  # type: ignore[union-attr]
    assert final.failure == "unknown_failure: read from [scrubbed]:51234"
    assert [a.ipv4 for a in scrubbed.test_keys.queries[0].answers] == ["93.184.215.14", "[scrubbed]"]
    assert scrubbed.test_keys.tls_handshakes[0].peer_certificates[0].subject_alt_names == ("[scrubbed]",)
    assert scrubbed.test_keys.control is not None
    assert set(scrubbed.test_keys.control.tcp_connect) == {"[scrubbed]:443", "93.184.215.14:443"}
    assert scrubbed.annotations == {"note": "[scrubbed]"}
    # Pure: the original is untouched; nothing to scrub gives the very same object.
    assert OURS_V6 in to_json(m)
    assert privacy.scrub(m, ["192.0.2.77"]) is m
    assert privacy.scrub(m, []) is m


def test_parse_whoami_keeps_the_address_in_memory_only() -> None:
    found = control.parse_whoami(b'{"probe_asn": "AS64500", "probe_cc": "PK", "probe_ip": "192.0.2.1"}')
    assert found == control.Identity("AS64500", "PK", probe_ip="192.0.2.1")
    assert "192.0.2.1" not in repr(found) and "192.0.2.1" not in str(found)
    assert control.parse_whoami(
        b'{"probe_asn": "AS1", "probe_cc": "PK", "probe_ip": "x"}'
    ) == control.Identity("AS1", "PK")
    assert control.parse_whoami(b'{"probe_asn": "AS1", "probe_cc": "PK"}') == control.Identity("AS1", "PK")


def test_the_helper_tells_the_probe_its_address() -> None:
    geo = Geo(asn_of=lambda ip: 64500, cc_of=lambda ip: "PK")
    with running_helper(HelperSettings(geo=geo)) as helper:
        context = tls.client_contexts(None).httpx
        found = asyncio.run(control.whoami(helper, timeout=5, ssl_context=context))
        config = asyncio.run(service.identify(webconnectivity.MeasureConfig(control_url=helper)))
    assert found == control.Identity("AS64500", "PK", probe_ip="127.0.0.1")
    assert (config.probe_asn, config.probe_cc, config.volunteer_addresses) == (
        "AS64500",
        "PK",
        ("127.0.0.1",),
    )
    assert "volunteer_addresses" not in repr(config)  # no log line of the config carries them


def test_local_address_tables() -> None:
    fib_trie = (
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "     +-- 10.250.0.0/30 2 0 2\n        |-- 10.250.0.0\n           /30 link UNICAST\n"
        "        |-- 10.250.0.2\n           /32 host LOCAL\n        |-- 10.250.0.3\n"
        "           /32 link BROADCAST\n     |-- 127.0.0.1\n        /32 host LOCAL\n"
    )
    assert [str(a) for a in privacy._fib_trie_locals(fib_trie)] == ["10.250.0.2", "127.0.0.1"]
    if_inet6 = (
        "fd000250000000000000000000000002 02 40 00 80  rpscrub0\n"
        "00000000000000000000000000000001 01 80 10 80 lo\n"
    )
    assert [str(a) for a in privacy._if_inet6(if_inet6)] == ["fd00:250::2", "::1"]
    assert all(not a.is_loopback for a in privacy.local_addresses())


def test_measure_scrubs_what_a_page_echoed() -> None:
    """The wiring: what webconnectivity.measure returns is scrubbed (loopback stands for the net)."""
    volunteer = "203.0.113.7"  # what whoami would have said
    with echo_server(address=volunteer) as port:
        url = f"http://127.0.0.1:{port}/"
        base = webconnectivity.MeasureConfig(allow_loopback=True).with_timeout(3)
        leaky = asyncio.run(webconnectivity.measure(url, config=base))
        config = dataclasses.replace(base, volunteer_addresses=(volunteer,))
        clean = asyncio.run(webconnectivity.measure(url, config=config))
    assert to_json(leaky).count(volunteer) >= 8  # the test can fail: the page does echo it
    document = to_json(clean)
    assert volunteer not in document
    assert document.count("[scrubbed]") == to_json(leaky).count(volunteer)
    final = clean.test_keys.requests[0]
    assert final.response is not None and final.response.title == "Your address is [scrubbed]"
    assert json.loads(document)["probe_ip"] == "127.0.0.1"
