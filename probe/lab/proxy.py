"""The ISP's transparent HTTP proxy: injects block pages, forwards everything else.

The censor REDIRECTs port-80 connections for chosen destinations to this proxy (iptables nat
PREROUTING). It reads the request head and looks at the Host:

- ``blockpage``: answers ``200`` with the national "Surf Safely" page verbatim
  (reference/pakistan.md §2.3), as the on-path injector does;
- ``redirect``: answers ``302`` with ``Location: http://blockpage.isp.lab/blocked?url=…``
  (the Wateen ``restrict.wateen.net`` style);
- anything else: connects to the original destination (``SO_ORIGINAL_DST``) and relays both ways.

Config (JSON)::

    {"port": 3128, "rules": {"www.youtube.com": {"action": "blockpage"}, …}}

Run as ``python -m probe.lab.proxy CONFIG.json`` (see :mod:`probe.lab.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import urllib.parse
from typing import Any

from probe.lab import serving
from probe.lab.sites import SURF_SAFELY

SO_ORIGINAL_DST = 80
"""From <linux/netfilter_ipv4.h>: the destination before NAT, as a ``sockaddr_in``."""


def original_destination(writer: asyncio.StreamWriter) -> tuple[str, int]:
    """Where the client meant to connect before the REDIRECT."""
    sock: socket.socket = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), port


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.write_eof()


async def _forward(
    head: bytes, destination: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        async with asyncio.timeout(5):
            up_reader, up_writer = await asyncio.open_connection(*destination)
    except (OSError, TimeoutError):
        await serving.respond(writer, 502, "Bad Gateway", b"")
        return
    up_writer.write(head)
    try:
        async with asyncio.timeout(300):
            await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))
    except TimeoutError:
        pass
    finally:
        await serving.close(up_writer)
        await serving.close(writer)


def _handler(rules: dict[str, dict[str, str]]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await serving.read_head(reader)
        if not head:
            await serving.close(writer)
            return
        _method, target, headers = serving.parse_head(head)
        host = serving.host_of(headers)
        rule = rules.get(host)
        if rule is None:
            await _forward(head, original_destination(writer), reader, writer)
        elif rule["action"] == "blockpage":
            await serving.respond(writer, 200, "OK", SURF_SAFELY.encode())
        else:
            blocked = urllib.parse.quote(f"http://{host}{target}", safe="")
            location = f"{rule['location']}?url={blocked}"
            await serving.respond(writer, 302, "Found", b"", extra=(("Location", location),))

    return handle


async def start(config: dict[str, Any]) -> list[serving.Closable]:
    """Listen on every address of the namespace (REDIRECT targets the incoming interface)."""
    return [await asyncio.start_server(_handler(config.get("rules", {})), "0.0.0.0", int(config["port"]))]


if __name__ == "__main__":
    serving.main(start)
