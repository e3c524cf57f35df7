"""Benchmark the patterns analysis: detection over ~1 M stored measurements, time and peak memory.

Usage (from the repository root)::

    python bench/patterns.py              # a synthetic year, 4 networks x 29 targets: ~1,000,000 rows
    python bench/patterns.py --days 30    # quick
    python bench/patterns.py --sweep 40   # timing over 40 seeds, in memory (issue 10)

It writes the synthetic Pakistan year (:mod:`measurements.patterns.synthetic`, extra healthy targets
to reach the volume) into a fresh SQLite file, then runs, each in a fresh process so that
peak memory (``ru_maxrss``) is its own:

* baseline — a plain full scan: the very SELECT detection streams, rows counted and dropped;
* detect — :func:`measurements.patterns.detect.detect_store` (the scan plus all the analysis);
* update — :func:`measurements.patterns.detect.update_flags` (detect, then store the flags).

Prints numbers and the ratio to the baseline; asserts nothing.

``--sweep N`` instead runs detection in memory on seeds 0..N-1 of ``SyntheticConfig.small``
and of a healthy (noise-only) configuration, and prints how far the flags are from the
scripted changes, in rounds: the estimate (``first_evidence_at``) and the confirmation
(``detected_at``), with every case beyond the 6-round budget. ``tests/patterns/test_sweep.py``
asserts the same on 40 seeds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measurements.patterns.detect import detect, detect_store, observations_query, update_flags
from measurements.patterns.synthetic import SyntheticConfig, materialize, write
from measurements.store.store import open_store
from tests.patterns.backtest import Backtest, Timing, healthy


def phase(name: str, url: str) -> dict[str, float]:
    """Run one phase here and return its wall time and peak RSS."""
    with open_store(url) as store:
        t0 = time.perf_counter()
        if name == "baseline":
            n = sum(1 for _ in store.stream(observations_query(), batch=10_000))
            extra = {"rows": float(n)}
        elif name == "detect":
            found = detect_store(store)
            extra = {"rows": float(found.n_measurements), "flags": float(len(found.flags))}
        else:
            found = update_flags(store)
            extra = {"rows": float(found.n_measurements), "flags": float(len(found.flags))}
        wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall_s": wall, "peak_mb": peak_mb, **extra}


def sweep(n: int) -> None:
    """Print the timing distributions over *n* seeds, and the flags on *n* healthy seeds."""
    t0 = time.perf_counter()
    timings: list[Timing] = []
    extra = 0
    for seed in range(n):
        found, left = Backtest(SyntheticConfig.small(seed=seed)).timings()
        timings += found
        extra += len(left)
    blocks_s = time.perf_counter() - t0
    print(f"{n} seeds, {len(timings) // 2} scripted blocks, {blocks_s:.1f} s")
    for kind in ("blocking_onset", "blocking_end"):
        mine = [t for t in timings if t.kind == kind]
        missing = sum(t.error is None for t in mine)
        errors = Counter(t.error for t in mine if t.error is not None)
        delays = Counter(t.delay for t in mine if t.delay is not None)
        print(
            f"{kind:15s} estimate {_dist(errors)} rounds; "
            f"confirmed after {_dist(delays, signed=False)} rounds; no flag {missing}"
        )
    print(f"flags matching no scripted change: {extra}")
    for t in timings:
        if t.error is None or t.delay is None or t.delay > 6 or abs(t.error) > 6:
            print(f"  beyond 6 rounds: {t}")
    t0 = time.perf_counter()
    false_flags = rows = 0
    for seed in range(n):
        beats, measured, targets = materialize(healthy(seed))
        false_flags += len(detect(beats, measured, targets).flags)
        rows += len(measured)
    print(f"healthy: {n} seeds, {rows:,} measurements (2 % noise), {false_flags} flags, "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip


def _dist(counts: Counter[int], *, signed: bool = True) -> str:
    """``value:count`` pairs, e.g. ``-1:12 +0:2028``."""
    return " ".join(f"{k:+d}:{v}" if signed else f"{k}:{v}" for k, v in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--extra-targets", type=int, default=19)
    parser.add_argument("--sweep", type=int, metavar="N", help="timing over N seeds, in memory")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sweep:
        sweep(args.sweep)
        return
    if args.phase:
        print(json.dumps(phase(args.phase, args.db)))
        return
    config = SyntheticConfig(days=args.days, extra_targets=args.extra_targets)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        t0 = time.perf_counter()
        with open_store(url) as store:
            n = write(store, config)
        print(f"wrote {n:,} measurements in {time.perf_counter() - t0:.1f} s ({config.days} days)")
        results = {}
        for name in ("baseline", "detect", "update"):
            cmd = [sys.executable, __file__, "--phase", name, "--db", url]
            results[name] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        base = results["baseline"]
        for name, r in results.items():
            ratio = r["wall_s"] / base["wall_s"]
            flags = f", {int(r['flags'])} flags" if "flags" in r else ""
            print(
                f"{name:8s} {r['wall_s']:6.2f} s  peak {r['peak_mb']:6.0f} MB  ({ratio:.2f}x baseline; "
                f"{int(r['rows']):,} rows{flags})"
            )


if __name__ == "__main__":
    main()
