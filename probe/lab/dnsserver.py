"""The lab resolvers: the honest public one in the world, the lying one at the ISP.

One module, two roles, over UDP and TCP port 53:

- **public** (no ``upstream``): authoritative for the lab zone. A known name gets its ``A``
  record (any other type: NOERROR, no answer); an unknown name gets NXDOMAIN.
- **ISP** (``upstream`` set): applies its censorship ``rules`` first — answer chosen
  addresses, NXDOMAIN, SERVFAIL, REFUSED, or silence (``drop``); answers its own ``zone``
  (``blockpage.isp.lab``) itself, so that it still works when everything beyond the ISP is cut;
  and forwards every other query to the upstream resolver, answering SERVFAIL when the upstream
  does not reply in time (a shutdown).
  A rule for ``x.com`` applies to its subdomains too, as a censor's list does.

Config (JSON)::

    {"address": "10.N.3.53", "port": 53, "zone": {"x.com": "10.N.64.10", …},
     "upstream": "10.N.65.53" | null, "upstream_timeout": 0.4,
     "rules": {"x.com": {"action": "answer", "addresses": ["10.N.3.80"]}, …}}

Run as ``python -m probe.lab.dnsserver CONFIG.json`` (see :mod:`probe.lab.serving`).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from probe.lab import serving

TTL = 60


class Resolver:
    """Answers one query message (wire format in, wire format or ``None`` out)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.zone = {dns.name.from_text(name): ip for name, ip in config.get("zone", {}).items()}
        self.rules = {dns.name.from_text(name): rule for name, rule in config.get("rules", {}).items()}
        self.upstream: str | None = config.get("upstream")
        self.upstream_port = int(config.get("upstream_port", 53))
        self.upstream_timeout = float(config.get("upstream_timeout", 0.4))

    async def answer(self, wire: bytes) -> bytes | None:
        """The reply to *wire*, or ``None`` to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if len(query.question) != 1:
            return _reply(query, dns.rcode.FORMERR).to_wire()
        question = query.question[0]
        rule = self._rule(question.name)
        if rule is not None:
            return self._apply(query, rule)
        if self.upstream is not None and question.name not in self.zone:
            return await self._forward(query)
        return self._authoritative(query)

    def _rule(self, name: dns.name.Name) -> dict[str, Any] | None:
        for candidate, rule in self.rules.items():
            if name == candidate or name.is_subdomain(candidate):
                return dict(rule)
        return None

    def _apply(self, query: dns.message.Message, rule: dict[str, Any]) -> bytes | None:
        action = rule["action"]
        if action == "drop":
            return None
        if action == "answer":
            return _with_a(query, rule["addresses"]).to_wire()
        rcode = {"nxdomain": dns.rcode.NXDOMAIN, "servfail": dns.rcode.SERVFAIL, "refused": dns.rcode.REFUSED}
        return _reply(query, rcode[action]).to_wire()

    def _authoritative(self, query: dns.message.Message) -> bytes:
        question = query.question[0]
        address = self.zone.get(question.name)
        if address is None:
            return _reply(query, dns.rcode.NXDOMAIN).to_wire()
        if question.rdtype != dns.rdatatype.A:
            return _reply(query, dns.rcode.NOERROR).to_wire()
        return _with_a(query, [address]).to_wire()

    async def _forward(self, query: dns.message.Message) -> bytes:
        assert self.upstream is not None
        upstream_query = dns.message.make_query(query.question[0].name, query.question[0].rdtype)
        try:
            response = await dns.asyncquery.udp(
                upstream_query, self.upstream, port=self.upstream_port, timeout=self.upstream_timeout
            )
        except (dns.exception.DNSException, OSError):
            return _reply(query, dns.rcode.SERVFAIL).to_wire()
        reply = _reply(query, response.rcode())
        reply.answer = response.answer
        return reply.to_wire()


def _reply(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.RA
    reply.set_rcode(rcode)
    return reply


def _with_a(query: dns.message.Message, addresses: list[str]) -> dns.message.Message:
    reply = _reply(query, dns.rcode.NOERROR)
    question = query.question[0]
    if question.rdtype == dns.rdatatype.A:
        reply.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "A", addresses))
    return reply


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        task = asyncio.create_task(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = await self.resolver.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def _tcp_handler(resolver: Resolver) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                while True:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    reply = await resolver.answer(await reader.readexactly(length))
                    if reply is None:
                        continue
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        finally:
            await serving.close(writer)

    return handle


async def start(config: dict[str, Any]) -> list[serving.Closable]:
    """Bind UDP and TCP on the configured address; return the transport and the server."""
    resolver = Resolver(config)
    address, port = config["address"], int(config.get("port", 53))
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(resolver), local_addr=(address, port))
    return [udp, await asyncio.start_server(_tcp_handler(resolver), address, port)]


if __name__ == "__main__":
    serving.main(start)
