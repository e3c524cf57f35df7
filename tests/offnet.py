"""No test sends a packet to the Internet: a guard on every socket of the test process.

Tests talk to loopback servers, and the lab to addresses inside its own namespaces; nothing
else. :func:`guard` wraps ``socket.socket.connect``, ``connect_ex`` and ``sendto`` (what
asyncio, httpx and dnspython reach in the end): a destination that is a global unicast
address (:attr:`ipaddress.IPv4Address.is_global` — not loopback, private, link-local,
documentation or benchmarking space) is refused with ``ENETUNREACH`` before any packet leaves,
and recorded; the test that did it then fails. ``socket.getaddrinfo`` (the system resolver,
which would ask the machine's name server) answers only ``localhost`` and address literals;
any other name is refused as a name that does not exist (``EAI_NONAME``, what NXDOMAIN gives)
and recorded the same way. Programs the tests start (the lab's servers in
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
_LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def _outside_name(host: Any) -> str | None:
    """*host* if looking it up would ask a name server, else ``None``."""
    if host is None:
        return None
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return None
    except ValueError:
        pass
    return None if name.lower() in _LOCAL_NAMES or name.lower().endswith(".localhost") else name


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

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        flags = kwargs.get("flags", args[4] if len(args) > 4 else 0)
        name = None if flags & socket.AI_NUMERICHOST else _outside_name(host)  # numeric: no lookup
        if name is not None:
            seen.append(f"getaddrinfo {name}")
            raise socket.gaierror(socket.EAI_NONAME, "tests never leave the machine (name lookup refused)")
        return real_getaddrinfo(host, *args, **kwargs)

    for name in _WRAPPED:
        setattr(socket.socket, name, wrap(name))
    socket.getaddrinfo = getaddrinfo
    try:
        yield seen
    finally:
        for name, real in before.items():
            setattr(socket.socket, name, real)
        socket.getaddrinfo = real_getaddrinfo
