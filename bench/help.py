"""Benchmark how fast ``probe --help`` and every ``probe COMMAND --help`` answer.

Usage (from the repository root, with the virtualenv's ``probe`` installed)::

    python bench/help.py           # median of 15 runs per command line
    python bench/help.py --n 30

Each figure is the wall time of a fresh process (what a person typing the command waits for),
the median of *n* runs after one warm-up. Baselines measured in the same run: a bare Python
interpreter (``python -c pass``), the same interpreter importing click, and ``probe --version``.
Prints numbers; asserts nothing (the import discipline behind them is tested in
``tests/test_cli_help.py``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.cli import COMMANDS


def _median_s(argv: list[str], n: int) -> float:
    subprocess.run(argv, check=True, capture_output=True)  # warm the page cache
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15, help="runs per command line (default 15)")
    args = parser.parse_args()
    probe = shutil.which("probe", path=str(Path(sys.executable).parent)) or shutil.which("probe")
    if probe is None:
        sys.exit("bench/help.py: no `probe` command next to this Python or on PATH (make bench installs it)")

    rows = [
        ("baseline: python -c pass", [sys.executable, "-c", "pass"]),
        ("baseline: python -c 'import click'", [sys.executable, "-c", "import click"]),
        ("baseline: probe --version", [probe, "--version"]),
        ("probe --help", [probe, "--help"]),
        *((f"probe {name} --help", [probe, name, "--help"]) for name in sorted(COMMANDS)),
    ]
    print(f"median wall time of a fresh process, {args.n} runs each")
    worst = 0.0
    for label, argv in rows:
        seconds = _median_s(argv, args.n)
        if label.startswith("probe "):
            worst = max(worst, seconds)
        print(f"{label:40s} {seconds * 1000:7.1f} ms")
    print(f"{'slowest help':40s} {worst * 1000:7.1f} ms (target: well under 300 ms)")


if __name__ == "__main__":
    main()
