"""An HTTP server that tells each client its own address, everywhere a page can.

``GET /`` answers ``302`` to ``/page?ip=ADDRESS`` (so the address is in ``Location`` and in the
next hop's request URL), with ``X-Client-IP: ADDRESS`` and ``Set-Cookie: client=ADDRESS``;
``GET /page…`` answers ``200`` with the address in the ``<title>``, the body (as sent, and in
its other textual forms: an IPv4 address IPv6-mapped, an IPv6 address fully expanded), the
``X-Client-IP`` header and a cookie. ADDRESS is the peer's address, or *address* when given
(loopback tests stand for a volunteer whose address is not 127.0.0.1).

As a program (in a lab namespace): ``python -m tests.servers.echo_server HOST [HOST…] PORT``
serves on PORT of each HOST, prints ``ready``, and exits when its stdin closes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def forms(address: str) -> list[str]:
    """*address* as sent and in the other textual forms a page might use."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return [address, f"::ffff:{address}"]
    return [address, ip.exploded, ip.exploded.upper()]


def _handler(fixed: str | None) -> type[BaseHTTPRequestHandler]:
    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            address = fixed or self.client_address[0].removeprefix("::ffff:")
            if self.path == "/":
                self._answer(302, b"", address, [("Location", f"/page?ip={address}")])
                return
            text = " ".join(forms(address))
            body = (
                f"<html><head><title>Your address is {address}</title></head>"
                f"<body><p>You came from {text}.</p></body></html>\n"
            ).encode()
            self._answer(200, body, address, [("Content-Type", "text/html; charset=utf-8")])

        def _answer(self, code: int, body: bytes, address: str, headers: list[tuple[str, str]]) -> None:
            self.send_response(code)
            for name, value in [
                *headers,
                ("X-Client-IP", address),
                ("Set-Cookie", f"client={address}; Path=/"),
                ("Content-Length", str(len(body))),
            ]:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet: stderr is for failures
            pass

    return Echo


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)


@contextlib.contextmanager
def echo_server(host: str = "127.0.0.1", *, address: str | None = None) -> Iterator[int]:
    """Serve on *host* (port 0) in a thread; yield the port."""
    server = _Server(host, 0, _handler(address))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def main(argv: list[str]) -> None:
    *hosts, port = argv
    servers = [_Server(host, int(port), _handler(None)) for host in hosts]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the parent goes
    for server in servers:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
