"""The lab servers on loopback (no privileges): resolvers, web server routing and SNI, HTTP parsing."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import trustme

from probe.lab import dnsserver, serving, webserver
from probe.lab.sites import SURF_SAFELY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _close(listeners: list[serving.Closable]) -> None:
    for listener in listeners:
        listener.close()
        if isinstance(listener, asyncio.Server):
            await listener.wait_closed()


def _ask(resolver: dnsserver.Resolver, name: str, rdtype: str = "A") -> dns.message.Message | None:
    wire = asyncio.run(resolver.answer(dns.message.make_query(name, rdtype).to_wire()))
    return None if wire is None else dns.message.from_wire(wire)


def _addresses(reply: dns.message.Message | None) -> list[str]:
    assert reply is not None
    return [item.to_text() for rrset in reply.answer for item in rrset]


PUBLIC = dnsserver.Resolver({"zone": {"x.com": "10.1.64.10", "example.com": "10.1.64.20"}})


def test_public_resolver_is_authoritative_for_the_lab_zone() -> None:
    assert _addresses(_ask(PUBLIC, "x.com")) == ["10.1.64.10"]
    aaaa = _ask(PUBLIC, "x.com", "AAAA")
    assert aaaa is not None and aaaa.rcode() == dns.rcode.NOERROR and not aaaa.answer
    missing = _ask(PUBLIC, "nope.example")
    assert missing is not None and missing.rcode() == dns.rcode.NXDOMAIN


def test_isp_resolver_rules_apply_to_names_and_their_subdomains() -> None:
    isp = dnsserver.Resolver(
        {
            "upstream": "127.0.0.1",
            "rules": {
                "x.com": {"action": "answer", "addresses": ["10.1.3.80"]},
                "example.com": {"action": "nxdomain"},
                "telegram.org": {"action": "drop"},
                "twitter.com": {"action": "refused"},
            },
        }
    )
    assert _addresses(_ask(isp, "x.com")) == ["10.1.3.80"]
    assert _addresses(_ask(isp, "api.x.com")) == ["10.1.3.80"]
    reply = _ask(isp, "www.example.com")
    assert reply is not None and reply.rcode() == dns.rcode.NXDOMAIN
    assert _ask(isp, "telegram.org") is None
    reply = _ask(isp, "twitter.com")
    assert reply is not None and reply.rcode() == dns.rcode.REFUSED


def test_isp_resolver_forwards_and_answers_servfail_when_upstream_is_gone() -> None:
    async def scenario() -> tuple[list[str], int, list[str]]:
        port = _free_port()
        listeners = await dnsserver.start(
            {"address": "127.0.0.1", "port": port, "zone": {"x.com": "10.1.64.10"}}
        )
        isp = dnsserver.Resolver(
            {"upstream": "127.0.0.1", "upstream_port": port, "zone": {"blockpage.isp.lab": "10.1.3.80"}}
        )
        forwarded = dns.message.from_wire(
            await isp.answer(dns.message.make_query("x.com", "A").to_wire()) or b""
        )
        gone = dnsserver.Resolver(
            {"upstream": "127.0.0.1", "upstream_port": _free_port(), "upstream_timeout": 0.2}
        )
        failed = dns.message.from_wire(
            await gone.answer(dns.message.make_query("x.com", "A").to_wire()) or b""
        )
        local = dns.message.from_wire(
            await isp.answer(dns.message.make_query("blockpage.isp.lab", "A").to_wire()) or b""
        )
        # and over TCP, as a tcp:// resolver would ask
        over_tcp = await dns.asyncquery.tcp(
            dns.message.make_query("x.com", "A"), "127.0.0.1", port=port, timeout=2
        )
        assert _addresses(over_tcp) == ["10.1.64.10"]
        await _close(listeners)
        return _addresses(forwarded), failed.rcode(), _addresses(local)

    forwarded, rcode, local = asyncio.run(scenario())
    assert forwarded == ["10.1.64.10"]
    assert rcode == dns.rcode.SERVFAIL
    assert local == ["10.1.3.80"]


def test_web_routes() -> None:
    status, _, body, extra = webserver.route("sites", "x.com", "/")
    assert status == 200 and b"<title>X. It&#x27;s what&#x27;s happening / X</title>" in body and extra
    assert webserver.route("sites", "twitter.com", "/")[3] == (("Location", "https://x.com/"),)
    status, _, body, _ = webserver.route("sites", "x.com", "/media/large.bin")
    assert status == 200 and len(body) == 1 << 20
    assert webserver.route("sites", "x.com", "/nope")[0] == 404
    assert webserver.route("sites", "unknown.example", "/")[0] == 404
    assert webserver.route("isp", "www.youtube.com", "/")[2] == SURF_SAFELY.encode()
    body = webserver.route("isp", "blockpage.isp.lab", "/blocked?url=http%3A%2F%2Fx.com%2F")[2]
    assert b"<title>Site Restricted</title>" in body and b"http://x.com/" in body


def test_head_parsing() -> None:
    method, target, headers = serving.parse_head(
        b"GET /a?b HTTP/1.1\r\nHOST: X.com:80\r\nHost: other\r\n\r\n"
    )
    assert (method, target) == ("GET", "/a?b")
    assert serving.host_of(headers) == "x.com"
    assert serving.host_of({"host": "[::1]:8080"}) == "[::1]"


def test_web_server_picks_the_certificate_by_sni(tmp_path: Path) -> None:
    ca = trustme.CA()
    certs = {}
    for name in ("example.com", "example.org"):
        certs[name] = str(tmp_path / f"{name}.pem")
        ca.issue_cert(name).private_key_and_cert_chain_pem.write_to_path(certs[name])
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    http_port, https_port = _free_port(), _free_port()

    async def fetch(server_name: str) -> bytes:
        listeners = await webserver.start(
            {
                "mode": "sites",
                "listeners": [{"address": "127.0.0.1", "domain": "example.com"}],
                "certs": certs,
                "http_port": http_port,
                "https_port": https_port,
            }
        )
        context = ssl.create_default_context(cafile=str(ca_file))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", https_port, ssl=context, server_hostname=server_name
        )
        writer.write(f"GET / HTTP/1.1\r\nHost: {server_name}\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        await _close(listeners)
        return data

    assert b"<title>Example Domain (org)</title>" in asyncio.run(fetch("example.org"))
    assert b"<title>Example Domain</title>" in asyncio.run(fetch("example.com"))
