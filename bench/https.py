"""Benchmark HTTPS throughput: probe measurements/s against minimal one- and two-handshake clients.

Usage (from the repository root)::

    python bench/https.py                  # 1000 exchanges each in 5 rounds, 16 in flight
    python bench/https.py --n 2000 --concurrency 32

The server is a loopback HTTPS server (trustme certificate for ``127.0.0.1``, ALPN
``http/1.1``, one response per connection) in a process of its own, so that its CPU does not
compete with the client's event loop. Measured in the same run, each with *concurrency*
exchanges in flight on one asyncio event loop:

- ``one handshake``: the minimal client — TLS connect (verified), ``GET``, read to EOF;
- ``two handshakes``: the same after a TLS connect that is closed at once, which is what a
  measurement did before issue 12 (the TLS step's handshake, then httpx's own connection);
- ``probe``: :func:`probe.webconnectivity.measure` of ``https://127.0.0.1:PORT/?n=i`` (IP
  literal: no DNS; no control), the round's unit of work: with the round's ``report_id`` and
  the volunteer's addresses gathered once, as :func:`probe.rounds.runner.stream_round` gives
  them to each of its measurements;
- ``probe alone``: the same measurement outside a round (``probe measure``: its own report_id,
  the addresses gathered per measurement), for comparison.

Prints exchanges/s and the probe's ratio to each baseline (issue 12 asks ≥ 80 % of the
two-handshake client, ≥ 40 % of the one-handshake one). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trustme

from probe import serialize, webconnectivity

BODY = b"<html><head><title>bench</title></head><body>" + b"x" * 2000 + b"</body></html>"


def _serve(listener: socket.socket, cert_pem: bytes, key_pem: bytes) -> None:
    """The server process: answer every connection with :data:`BODY`, then close it."""
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a handshake-only connection, closed by the client
        finally:
            writer.transport.abort()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=listener, ssl=context, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def _exchange(port: int, context: ssl.SSLContext, *, handshakes: int) -> None:
    for _ in range(handshakes - 1):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
        writer.transport.abort()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    while await reader.read(65536):
        pass
    writer.transport.abort()


async def _rate(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> float:
    """Exchanges per second of *n* calls of *one*, *concurrency* at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> None:
        async with gate:
            await one(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(bounded(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="exchanges per figure (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="in flight (default 16, a round's)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds, medians kept (default 5)")
    args = parser.parse_args()

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = listener.getsockname()[1]
    server = multiprocessing.get_context("spawn").Process(
        target=_serve,
        args=(
            listener,
            b"".join(blob.bytes() for blob in cert.cert_chain_pems),
            cert.private_key_pem.bytes(),
        ),
        daemon=True,
    )
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ca_file = Path(tmp) / "ca.pem"
            ca.cert_pem.write_to_path(str(ca_file))
            rates = asyncio.run(_run(port, ca_file, args.n, args.concurrency, args.rounds))
    finally:
        server.terminate()
        server.join()
    one, two, probe, alone = rates
    print(
        f"HTTPS exchanges/s, {args.n} each in {args.rounds} interleaved rounds (medians), "
        f"{args.concurrency} in flight (loopback, server in its own process)"
    )
    print(f"  minimal client, one handshake   {one:8.1f}/s")
    print(f"  minimal client, two handshakes  {two:8.1f}/s")
    print(f"  probe measurements              {probe:8.1f}/s")
    print(f"  probe alone (outside a round)   {alone:8.1f}/s")
    print(f"  probe / two handshakes  {probe / two:6.1%}   (issue 12: >= 80 %)")
    print(f"  probe / one handshake   {probe / one:6.1%}   (issue 12: >= 40 %)")


async def _run(
    port: int, ca_file: Path, n: int, concurrency: int, rounds: int
) -> tuple[float, float, float, float]:
    context = ssl.create_default_context(cafile=str(ca_file))
    alone = config = webconnectivity.prepare(
        webconnectivity.MeasureConfig(ca_file=ca_file, allow_loopback=True).with_timeout(5)
    )
    # What a round gives each of its measurements (runner.stream_round): the round's report_id
    # and the volunteer's addresses gathered for the round, not per measurement.
    config = replace(
        config,
        report_id=serialize.new_report_id(
            datetime.now(UTC), test_name="web_connectivity", probe_cc="ZZ", probe_asn="AS0"
        ),
        addresses=webconnectivity.round_addresses(config),
    )
    url = f"https://127.0.0.1:{port}/"

    async def measured(i: int, config: webconnectivity.MeasureConfig = config) -> None:
        m = await webconnectivity.measure(f"{url}?n={i}", config=config)
        assert m.test_keys.requests and m.test_keys.requests[0].failure is None, "measurement failed"

    await _rate(concurrency * 4, concurrency, measured)  # warm-up: imports, contexts, caches
    # Interleaved in rounds, each figure the median of its rounds: a machine whose load drifts
    # during the run moves all three alike.
    figures: list[list[float]] = [[], [], [], []]
    for _ in range(rounds):
        figures[0].append(
            await _rate(n // rounds, concurrency, lambda _: _exchange(port, context, handshakes=1))
        )
        figures[1].append(
            await _rate(n // rounds, concurrency, lambda _: _exchange(port, context, handshakes=2))
        )
        figures[2].append(await _rate(n // rounds, concurrency, measured))
        figures[3].append(await _rate(n // rounds, concurrency, lambda i: measured(i, alone)))
    one, two, probe, by_itself = (statistics.median(samples) for samples in figures)
    return one, two, probe, by_itself


if __name__ == "__main__":
    main()
