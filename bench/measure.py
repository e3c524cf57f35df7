"""Benchmark one full https measurement against a loopback server: median wall time and peak RSS.

Usage (from the repository root)::

    python bench/measure.py            # 30 measurements after 3 warm-up ones
    python bench/measure.py --n 100

Each measurement is a real :func:`probe.webconnectivity.measure` of ``https://127.0.0.1:PORT/``
(IP literal: no DNS) against the loopback HTTPS test server with a trustme certificate: TCP
connect, TLS handshake with verification, HTTP fetch over that same connection (one handshake
since issue 12), analysis. The baseline, measured in the same run, is the bare TCP connect +
TLS handshake + request to the same server with the standard library alone (``ssl`` +
``socket``), so the figure shows what reachprobe's recording and analysis add. Prints numbers;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback servers live in tests/

import trustme

from probe import webconnectivity
from tests.servers.http_server import http_server


def _bare(port: int, context: ssl.SSLContext) -> None:
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        while tls.recv(65536):
            pass


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="measurements timed (default 30)")
    args = parser.parse_args()

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp, http_server(cert) as server:
        ca_file = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        url = f"https://127.0.0.1:{server.port}/"
        config = webconnectivity.MeasureConfig(ca_file=ca_file, allow_loopback=True).with_timeout(5)

        bare_context = ssl.create_default_context(cafile=str(ca_file))
        bare: list[float] = []
        for i in range(args.n + 3):
            t0 = time.perf_counter()
            _bare(server.port, bare_context)
            if i >= 3:
                bare.append(time.perf_counter() - t0)

        async def timed() -> list[float]:
            samples = []
            for i in range(args.n + 3):
                t0 = time.perf_counter()
                m = await webconnectivity.measure(url, config=config)
                if i >= 3:
                    samples.append(time.perf_counter() - t0)
                assert m.test_keys.requests and m.test_keys.requests[0].failure is None, "measurement failed"
            return samples

        probe = asyncio.run(timed())

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"one https measurement on loopback, median of {args.n} after 3 warm-up:")
    print(f"  baseline (stdlib connect + TLS + GET): {_median_ms(bare):7.1f} ms")
    print(f"  probe.webconnectivity.measure:         {_median_ms(probe):7.1f} ms")
    print(f"  ratio: {statistics.median(probe) / statistics.median(bare):.1f}x")
    print(f"  peak RSS of this process: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
