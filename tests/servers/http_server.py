"""A loopback HTTP/1.1 server (HTTPS with a trustme certificate) with scripted routes.

It speaks raw HTTP over sockets, one request per connection and one thread per connection,
so that it can misbehave in ways a real framework would not let it. Routes:

- ``/``: 200, an HTML page with a ``<title>`` and some mixed-case and repeated headers;
- ``/echo?body=…&type=…&encoding=…``: 200 with that body (utf-8 unless *encoding*) and
  Content-Type, for title tests;
- ``/size/N``: 200 with N bytes of ``a`` and a Content-Length;
- ``/r/N``: 302 to ``/r/N-1``, and ``/r/1`` to ``/final``; ``/final``: 200 ``final``;
- ``/loop/N``: 302 to ``/loop/N+1``, forever;
- ``/broken``: 302 with ``Location: http://``; ``/dir/relative``: 301 to ``next?x=1``;
  ``/redirect?to=…``: 307 to whatever ``to`` says; ``/no-location``: 302 without Location;
- ``/endless``: 200, a chunked body that never ends;
- ``/trickle``: 200 headers, then one body byte every 0.2 s, forever;
- ``/trickle-head``: the status line and headers themselves, one byte every 0.2 s;
- ``/reset``: read the request, then close with SO_LINGER 0 (the client gets a RST);
- ``/close``: read the request, then close normally without answering (FIN);
- ``/garbage``: answer with something that is not HTTP;
- ``/gzip``, ``/deflate``, ``/raw-deflate``: the ``/`` page compressed; ``/gzip-size/N``:
  N bytes gzipped; ``/bomb``: 64 MiB of zeros in a 64 KiB gzip body; ``/bad-gzip``: a
  gzip header over garbage; ``/br``: ``Content-Encoding: br`` over arbitrary bytes;
- ``/zip-bomb/KIND[/…]`` (any method, any path below): 10 MB of zeros compressed by KIND —
  ``gzip``, ``deflate`` (zlib), ``raw-deflate``, ``nested`` (gzip of gzip, declared
  ``gzip, gzip``), ``nested-once`` (gzip of gzip, declared ``gzip``), ``chunked`` (gzip in
  1 KiB chunks); ``application/dns-message`` when the path ends in ``dns-query``, else JSON,
  so that it can stand for a control helper, its ``/whoami`` and a DoH server alike;
- ``/cookie-gate``: 200 ``welcome`` when the request carries the cookie ``gate=open``, else
  302 to itself with ``Set-Cookie: gate=open; Path=/`` (a site that needs its cookie);
- ``/set-cookie?cookie=…&to=…``: 302 to ``to`` (200 without it) with ``Set-Cookie: cookie``;
- ``/redirect-bytes?to=…``: 302 whose Location is the percent-decoded *bytes* of ``to``,
  verbatim (non-ASCII, invalid UTF-8, control characters);
- anything else: 404.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

import trustme

from tests.servers.tcp_server import connection_server, rst_close

PAGE = (
    b"<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
    b"<TITLE>\n  Hello &amp;\t W\xc3\xb6rld  </title></head>"
    b"<body><p>It works.</p><title>second</title></body></html>\n"
)
PAGE_HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("X-Mixed-CASE", "Yes"),
    ("set-cookie", "a=1"),
    ("Set-Cookie", "b=2"),
)
BOMB_SIZE = 64 * 1024 * 1024
ZIP_BOMB_SIZE = 10 * 1000 * 1000
ZIP_BOMB_KINDS = ("gzip", "deflate", "raw-deflate", "nested", "nested-once", "chunked")


@dataclass(frozen=True)
class Request:
    """A request as the server read it."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    sni: str | None


@dataclass
class HTTPServer:
    """A running server: where it listens and what it received."""

    host: str
    port: int
    scheme: str
    requests: list[Request] = field(default_factory=list)

    def url(self, path: str = "/", host: str = "example.com") -> str:
        """The URL of *path* under *host* (any name: the client pins the address)."""
        return f"{self.scheme}://{host}:{self.port}{path}"


@functools.cache
def bomb() -> bytes:
    """64 MiB of zeros, gzipped (about 64 KiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(BOMB_SIZE >> 20)) + compressor.flush()


@functools.cache
def zip_bomb(kind: str) -> tuple[str, bytes]:
    """``(Content-Encoding, body)`` of the ``/zip-bomb/KIND`` route: 10 MB of zeros, compressed."""
    zeros = bytes(ZIP_BOMB_SIZE)
    once = gzip.compress(zeros, 9)
    return {
        "gzip": ("gzip", once),
        "chunked": ("gzip", once),
        "deflate": ("deflate", _deflate(zeros, zlib.MAX_WBITS)),
        "raw-deflate": ("deflate", _deflate(zeros, -zlib.MAX_WBITS)),
        "nested": ("gzip, gzip", gzip.compress(once, 9)),
        "nested-once": ("gzip", gzip.compress(once, 9)),
    }[kind]


def _response(
    status: str, body: bytes, headers: tuple[tuple[str, str], ...] = (), *, length: bool = True
) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _redirect(status: str, location: str | None) -> bytes:
    return _response(status, b"", (("Location", location),) if location is not None else ())


def _deflate(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _drain_body(conn: socket.socket, head: str, headers: tuple[tuple[str, str], ...]) -> None:
    """Read a declared request body (a POST): closing with unread data would send a RST."""
    length = next((value for name, value in headers if name.lower() == "content-length"), "0")
    remaining = (int(length) if length.isdigit() else 0) - len(
        head.split("\r\n\r\n", 1)[-1].encode("latin-1")
    )
    while remaining > 0:
        chunk = conn.recv(min(remaining, 65536))
        if not chunk:
            return
        remaining -= len(chunk)


class _Handler:
    """Serves one connection (in its own thread)."""

    def __init__(
        self, conn: socket.socket, stop: threading.Event, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.conn = conn
        self.stop = stop
        self.headers = headers

    def answer(self, target: str) -> None:
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        parts = path.strip("/").split("/")
        fixed = {
            "/": _response("200 OK", PAGE, PAGE_HEADERS),
            "/final": _response("200 OK", b"final", (("Content-Type", "text/plain"),)),
            "/broken": _redirect("302 Found", "http://"),
            "/no-location": _redirect("302 Found", None),
            "/dir/relative": _redirect("301 Moved Permanently", "next?x=1"),
            "/garbage": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        }
        if path in fixed:
            self.conn.sendall(fixed[path])
        elif path == "/echo":
            content_type = query.get("type", ["text/html"])[0]
            body = query.get("body", [""])[0].encode(query.get("encoding", ["utf-8"])[0])
            self.conn.sendall(_response("200 OK", body, (("Content-Type", content_type),)))
        elif path == "/redirect":
            self.conn.sendall(_redirect("307 Temporary Redirect", query.get("to", [""])[0]))
        elif path == "/cookie-gate":
            self.cookie_gate()
        elif path == "/set-cookie":
            cookie = (("Set-Cookie", query.get("cookie", [""])[0]),)
            to = query.get("to")
            head = ("302 Found", (("Location", to[0]), *cookie)) if to else ("200 OK", cookie)
            self.conn.sendall(_response(head[0], b"", head[1]))
        elif path == "/redirect-bytes":
            location = unquote_to_bytes(url.query.removeprefix("to="))
            head = b"HTTP/1.1 302 Found\r\nLocation: %b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            self.conn.sendall(head % location)
        elif len(parts) >= 2 and parts[0] == "zip-bomb" and parts[1] in ZIP_BOMB_KINDS:
            self.zip_bomb(parts[1], dns=path.endswith("dns-query"))
        elif len(parts) == 2 and parts[0] in ("size", "gzip-size", "r", "loop") and parts[1].isdigit():
            self.numbered(parts[0], int(parts[1]))
        elif path in ("/gzip", "/deflate", "/raw-deflate", "/bomb", "/bad-gzip", "/br"):
            self.encoded(path[1:])
        elif path in ("/endless", "/trickle", "/trickle-head"):
            self.stream(path[1:])
        elif path == "/reset":
            rst_close(self.conn)
        elif path != "/close":  # /close: return without answering, the caller closes
            self.conn.sendall(_response("404 Not Found", b"not found", (("Content-Type", "text/plain"),)))

    def cookie_gate(self) -> None:
        sent = [value for name, value in self.headers if name.lower() == "cookie"]
        if any(pair.strip() == "gate=open" for value in sent for pair in value.split(";")):
            self.conn.sendall(_response("200 OK", b"welcome", (("Content-Type", "text/plain"),)))
        else:
            headers = (("Location", "/cookie-gate"), ("Set-Cookie", "gate=open; Path=/"))
            self.conn.sendall(_response("302 Found", b"", headers))

    def numbered(self, route: str, n: int) -> None:
        if route == "size":
            self.conn.sendall(_response("200 OK", b"a" * n))
        elif route == "gzip-size":
            self.conn.sendall(_response("200 OK", gzip.compress(b"a" * n), (("Content-Encoding", "gzip"),)))
        elif route == "r":
            self.conn.sendall(_redirect("302 Found", f"/r/{n - 1}" if n > 1 else "/final"))
        else:
            self.conn.sendall(_redirect("302 Found", f"/loop/{n + 1}"))

    def encoded(self, name: str) -> None:
        coding, body = {
            "gzip": ("gzip", gzip.compress(PAGE)),
            "deflate": ("deflate", _deflate(PAGE, zlib.MAX_WBITS)),
            "raw-deflate": ("deflate", _deflate(PAGE, -zlib.MAX_WBITS)),
            "bomb": ("gzip", bomb()),
            "bad-gzip": ("gzip", b"\x1f\x8b\x08\x00" + b"not really gzip" * 10),
            "br": ("br", b"\x0b\x02\x80hello\x03"),
        }[name]
        headers = (("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", coding))
        self.conn.sendall(_response("200 OK", body, headers))

    def zip_bomb(self, kind: str, *, dns: bool) -> None:
        coding, body = zip_bomb(kind)
        headers = (
            ("Content-Type", "application/dns-message" if dns else "application/json"),
            ("Content-Encoding", coding),
        )
        if kind != "chunked":
            self.conn.sendall(_response("200 OK", body, headers))
            return
        self.conn.sendall(
            _response("200 OK", b"", (*headers, ("Transfer-Encoding", "chunked")), length=False)
        )
        with contextlib.suppress(OSError):  # the client stops reading once it has enough
            for i in range(0, len(body), 1024):
                piece = body[i : i + 1024]
                self.conn.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
            self.conn.sendall(b"0\r\n\r\n")

    def stream(self, name: str) -> None:
        if name == "trickle-head":
            data = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000
            for i in range(len(data)):
                if self.stop.wait(0.2):
                    return
                self.conn.sendall(data[i : i + 1])
            return
        self.conn.sendall(_response("200 OK", b"", (("Transfer-Encoding", "chunked"),), length=False))
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n" if name == "endless" else b"1\r\nx\r\n"
        while not self.stop.wait(0 if name == "endless" else 0.2):
            self.conn.sendall(chunk)


@contextlib.contextmanager
def http_server(cert: trustme.LeafCert | None = None, *, host: str = "127.0.0.1") -> Iterator[HTTPServer]:
    """Serve the routes on *host*, port 0; HTTPS with *cert* when given.

    Yields:
        The server; every socket and thread is closed and joined on exit.
    """
    stop = threading.Event()
    server = HTTPServer(host, 0, "https" if cert else "http")
    context: ssl.SSLContext | None = None
    names: dict[int, str | None] = {}
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.set_alpn_protocols(["http/1.1"])
        cert.configure_cert(context)

        def remember_sni(_sock: object, name: str | None, _context: ssl.SSLContext) -> None:
            names[threading.get_ident()] = name  # the handshake runs in the handler's thread

        context.sni_callback = remember_sni

    def handle(raw: socket.socket) -> None:
        conn = context.wrap_socket(raw, server_side=True) if context is not None else raw
        try:
            head = _read_head(conn).decode("latin-1")
            request_line, *header_lines = head.split("\r\n\r\n", 1)[0].split("\r\n")
            method, target, _ = [*request_line.split(" ", 2), "", ""][:3]
            headers = tuple(
                (name, value.strip())
                for name, _, value in (line.partition(":") for line in header_lines if line)
            )
            sni = names.pop(threading.get_ident(), None)
            server.requests.append(Request(method, target, headers, sni))
            _drain_body(conn, head, headers)
            _Handler(conn, stop, headers).answer(target)
        finally:
            conn.close()

    with connection_server(handle, host=host, threaded=True, stop=stop) as port:
        server.port = port
        yield server
