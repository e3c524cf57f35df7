"""Capture one connection's packets on one interface: an ``AF_PACKET`` socket, no libpcap.

A ``SOCK_DGRAM`` packet socket bound to the interface and to IPv4 hands over every IPv4 packet
the interface sends or receives, with the link header already removed (so Ethernet, loopback,
Wi-Fi and tunnels look alike) and a kernel timestamp (``SO_TIMESTAMPNS``). The socket is read
from the asyncio loop (``add_reader``), no thread; :func:`probe.raw.packets.belongs` keeps the
flow's packets and the ICMP errors quoting them (scapy's ``lfilter``, on raw bytes) — no BPF
program, so neither tcpdump nor libpcap need be installed. The packet direction is the kernel's
``PACKET_OUTGOING`` mark: on loopback every packet is seen twice, once each way, and the
analysis takes each in the direction that matters.

Opening the socket needs root or ``CAP_NET_RAW``; :func:`capture_problem` says so up front.
Linux only (``AF_PACKET``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import Final

from probe.raw.packets import Flow, Frame, belongs

ETH_P_IP: Final = 0x0800
SO_TIMESTAMPNS: Final = 35
"""``SO_TIMESTAMPNS`` (= ``SCM_TIMESTAMPNS``) on Linux's generic ABI: x86, ARM, RISC-V …"""
RECEIVE_BUFFER_BYTES: Final = 4 << 20
"""Room for a busy interface's other traffic while the loop is elsewhere."""
PRIVILEGE_PROBLEM: Final = "raw packet capture needs root or CAP_NET_RAW"
_TIMESPEC: Final = struct.Struct("@ll")


def capture_problem() -> str | None:
    """Why a packet capture cannot be opened here, or ``None`` when it can."""
    if not hasattr(socket, "AF_PACKET"):
        return "raw packet capture needs Linux (AF_PACKET)"
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP)).close()
    except PermissionError:
        return PRIVILEGE_PROBLEM
    except OSError as exc:
        return f"raw packet capture unavailable: {exc.strerror or exc}"
    return None


def route_interface(ip: str) -> str | None:
    """The interface of the main routing table's route to *ip*, or ``None`` without a route.

    Policy routing (``ip rule``: VPNs, fwmarks) is not followed: give the interface explicitly
    there.
    """
    import scapy.route  # noqa: F401  # importing it fills conf.route
    from scapy.config import conf

    conf.route.resync()  # scapy read the table when imported: routes may have changed since
    interface, source, _gateway = conf.route.route(ip, verbose=0)
    return None if source == "0.0.0.0" else str(interface)


class FlowCapture:
    """The packets of *flow* on *interface*, from :meth:`start` until :meth:`stop`.

    ``icmp_seen`` is set when an ICMP error quoting the flow arrives (TTL localisation waits on it).
    """

    def __init__(self, interface: str, flow: Flow) -> None:
        self.interface = interface
        self.flow = flow
        self.frames: list[Frame] = []
        self.icmp_seen = asyncio.Event()
        self._sock: socket.socket | None = None

    def start(self) -> None:
        """Open the packet socket and start reading it on the running loop.

        Raises:
            OSError: the socket cannot be opened (``PermissionError`` without privilege) or
                the interface does not exist.
        """
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.bind((self.interface, ETH_P_IP))
            sock.setblocking(False)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._read)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def stop(self) -> tuple[Frame, ...]:
        """Stop reading (after taking what is queued) and close; return the frames (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._read(sock)
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        return tuple(self.frames)

    def _read(self, sock: socket.socket | None = None) -> None:
        sock = sock or self._sock
        if sock is None:
            return
        space = socket.CMSG_SPACE(_TIMESPEC.size)
        while True:
            try:
                data, ancillary, _flags, address = sock.recvmsg(65535, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # The interface went away: stop listening (an error keeps the socket readable,
                # so the loop would call back forever); the analysis works with what it has.
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().remove_reader(sock.fileno())
                return
            if not belongs(data, self.flow):
                continue
            outbound = address[2] == socket.PACKET_OUTGOING
            self.frames.append(Frame(_timestamp_ns(ancillary), outbound, data))
            if not outbound and data[9] == 1:
                self.icmp_seen.set()


def _timestamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return time.time_ns()  # no kernel timestamp: the same clock, read a little later
