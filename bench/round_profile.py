"""Profile one loopback round with cProfile: where a measurement's CPU goes (issue 12).

Usage (from the repository root)::

    python bench/round_profile.py                  # 2,300 targets, all answering, over http
    python bench/round_profile.py --n 500 --https  # https targets (one TLS handshake each)
    python bench/round_profile.py --top 40

The round is :func:`probe.rounds.runner.measure_round` at the default bounds over
``http://127.0.0.1:PORT/?n=i`` (or ``https://localhost:PORT/?n=i`` with a trustme CA and
the system resolver, with ``--https``) on the loopback HTTP server of the tests, each result
dropped as it ends (the store is ``bench/store.py``'s). Printed: the round's wall time and
measurements/s, the baseline in the same process (the round's total profiled time), then the
share of that time of the functions the issue names (per-measurement work: the volunteer's
addresses, URL splitting, httpx clients, cookies), and the top functions by own time and by
cumulative time.

cProfile slows everything down by a similar factor; compare shares, not seconds, across runs.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback servers live in tests/

import trustme

from probe import webconnectivity
from probe.rounds import runner
from probe.rounds.targets import Target
from tests.servers.http_server import http_server

WATCHED = (
    ("probe/privacy.py", "volunteer_addresses"),
    ("probe/privacy.py", "scrub"),
    ("probe/steps/urls.py", "split_url"),
    ("probe/steps/urls.py", "split_url_parts"),
    ("httpx/_client.py", "__init__"),
    ("httpx/_client.py", "aclose"),
    ("probe/steps/http.py", "header"),
    ("probe/steps/http.py", "store"),
    ("ssl.py", "do_handshake"),
    ("probe/webconnectivity.py", "measure"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2300, help="targets in the round")
    parser.add_argument("--https", action="store_true", help="https targets (TLS on loopback)")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    with http_server(cert if args.https else None) as server, ca.cert_pem.tempfile() as ca_file:
        scheme, host = ("https", "localhost") if args.https else ("http", "127.0.0.1")
        targets = [Target(url=f"{scheme}://{host}:{server.port}/?n={i}") for i in range(args.n)]
        config = webconnectivity.MeasureConfig(
            resolvers=(), allow_loopback=True, ca_file=Path(ca_file) if args.https else None
        ).with_timeout(5.0)
        failed = 0

        async def drop(result: runner.Result) -> None:
            nonlocal failed
            m = result.measurement
            failed += m is None or m.test_keys.http_experiment_failure is not None

        profile = cProfile.Profile()
        t0 = time.perf_counter()
        profile.enable()
        asyncio.run(runner.stream_round(targets, config=config, sink=drop))
        profile.disable()
        wall = time.perf_counter() - t0
    stats = pstats.Stats(profile)
    total = stats.total_tt  # type: ignore[attr-defined]  # set by Stats, not in the stubs
    print(f"round: {args.n} {scheme} loopback targets at the default bounds, under cProfile")
    print(f"wall {wall:.2f} s ({args.n / wall:.0f} measurements/s profiled); {failed} failed fetches")
    print(f"baseline: the round's profiled time, {total:.2f} s = 100 %")
    print("\nnamed per-measurement work (cumulative, share of the round; calls per measurement):")
    for (path, _line, name), (_cc, calls, _tt, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]  # pstats' raw table
        for want_path, want_name in WATCHED:
            if path.endswith(want_path) and name == want_name:
                print(
                    f"  {want_path}:{want_name:<22} {100 * cumulative / total:5.1f} %"
                    f"   {calls / args.n:5.2f} calls/measurement"
                )
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(args.top)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"\ntop {args.top} by {order}:")
        print("\n".join(lines[start:]))


if __name__ == "__main__":
    main()
