"""Benchmark the patterns analysis: detection over ~1 M stored measurements, time and peak memory.

Usage (from the repository root)::

    python bench/patterns.py              # a synthetic year, 4 networks x 29 targets: ~1,000,000 rows
    python bench/patterns.py --days 30    # quick

It writes the synthetic Pakistan year (:mod:`measurements.synthetic`, extra healthy targets
to reach the volume) into a fresh SQLite file, then runs, each in a fresh process so that
peak memory (``ru_maxrss``) is its own:

* baseline — a plain full scan: the very SELECT detection streams, rows counted and dropped;
* detect — :func:`measurements.patterns.detect_store` (the scan plus all the analysis);
* update — :func:`measurements.patterns.update_flags` (detect, then store the flags).

Prints numbers and the ratio to the baseline; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measurements.patterns import detect_store, observations_query, update_flags
from measurements.store import open_store
from measurements.synthetic import SyntheticConfig, write


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--extra-targets", type=int, default=19)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
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
