"""What every lab server shares: its config file, the readiness line, and a clean exit.

A server is started as ``python -m probe.lab.<module> CONFIG.json`` inside a namespace. It
binds its sockets, prints ``ready`` on stdout, and runs until SIGTERM/SIGINT or until its
stdin reaches end of file — the parent holds the other end of that pipe, so a parent that dies
(even by SIGKILL) takes its servers with it and no process outlives a lab.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

READY = "ready"


class Closable(Protocol):
    """A listening server or a datagram transport."""

    def close(self) -> None: ...


Starter = Callable[[dict[str, Any]], Awaitable[list[Closable]]]
"""Binds the server's sockets from its config; returns them once they accept connections."""


def main(start: Starter) -> None:
    """Run a server: load ``sys.argv[1]``, call *start*, signal readiness, wait to be stopped."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} CONFIG.json")
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    asyncio.run(_serve(start, config))


async def _serve(start: Starter, config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_network_errors)
    listeners = await start(config)
    print(READY, flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)

    def on_stdin() -> None:
        try:
            data = os.read(stdin, 4096)
        except BlockingIOError:
            return
        if not data:
            stop.set()

    loop.add_reader(stdin, on_stdin)
    await stop.wait()
    for listener in listeners:
        listener.close()


def _quiet_network_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A client reset mid-handshake is every censorship scenario: not worth a traceback.
    if isinstance(context.get("exception"), OSError):
        return
    loop.default_exception_handler(context)


async def read_head(reader: asyncio.StreamReader, *, timeout: float = 10.0, limit: int = 16384) -> bytes:
    """Read an HTTP request head (through the blank line); ``b""`` if the client gave none."""
    try:
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        return b""
    return head if len(head) <= limit else b""


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """The method, target and headers (lower-case names, first value wins) of a request head."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, *_ = ([*lines[0].split(" "), "", ""])[:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return method, target, headers


def host_of(headers: dict[str, str]) -> str:
    """The Host header without port or trailing dot, lower case."""
    host = headers.get("host", "").lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


async def respond(
    writer: asyncio.StreamWriter,
    status: int,
    reason: str,
    body: bytes,
    *,
    content_type: str = "text/html; charset=utf-8",
    extra: tuple[tuple[str, str], ...] = (),
    send_body: bool = True,
) -> None:
    """Write one HTTP/1.1 response and close the connection (errors from a gone client ignored)."""
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in extra]
    head += ["Connection: close", "", ""]
    try:
        writer.write("\r\n".join(head).encode("latin-1"))
        if send_body:
            for start in range(0, len(body), 16384):
                writer.write(body[start : start + 16384])
                await writer.drain()
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        await close(writer)


async def close(writer: asyncio.StreamWriter) -> None:
    """Close *writer* without waiting on a peer that may never answer."""
    try:
        writer.close()
        async with asyncio.timeout(2):
            await writer.wait_closed()
    except (ConnectionError, OSError, TimeoutError):
        writer.transport.abort()
