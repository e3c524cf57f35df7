"""No test sends a packet to the Internet: a guard on every socket of the test process.

Tests talk to loopback servers, and the lab to addresses inside its own namespaces; nothing
else. :func:`guard` wraps ``socket.socket.connect``, ``connect_ex`` and ``sendto`` (what
asyncio, httpx and dnspython reach in the end): a destination that is a global unicast
address (:attr:`ipaddress.IPv4Address.is_global` — not loopback, private, link-local,
documentation or benchmarking space) is refused with ``ENETUNREACH`` before any packet leaves,
and recorded; the test that did it then fails. Programs the tests start (the lab's servers in
their namespaces, ``probe`` in a child process) are not covered: the lab's addresses are private.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_WRAPPED = ("connect", "connect_ex", "sendto")


def _global(address: Any) -> str | None:
    """The host of *address* if it is a global unicast IP address, else ``None``."""
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return None  # a Unix socket path, or nothing to judge
    try:
        ip = ipaddress.ip_address(address[0].split("%", 1)[0])
    except ValueError:
        return None  # a name: the resolver's own sockets are judged when they connect
    return address[0] if ip.is_global and not ip.is_multicast else None


@contextmanager
def guard() -> Iterator[list[str]]:
    """Refuse and record every global destination while the block runs; yield the records."""
    seen: list[str] = []
    before = {name: getattr(socket.socket, name) for name in _WRAPPED}

    def wrap(name: str) -> Callable[..., Any]:
        real = before[name]

        def checked(sock: socket.socket, *args: Any) -> Any:
            host = _global(args[-1])
            if host is not None:
                seen.append(f"{name} {host}")
                if name == "connect_ex":  # it reports errors by number, as the real one does
                    return errno.ENETUNREACH
                raise OSError(errno.ENETUNREACH, f"tests never leave the machine (refused {host})")
            return real(sock, *args)

        return checked

    for name in _WRAPPED:
        setattr(socket.socket, name, wrap(name))
    try:
        yield seen
    finally:
        for name, real in before.items():
            setattr(socket.socket, name, real)
