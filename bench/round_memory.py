"""Benchmark a round's peak memory against the length of its list (issue 12).

Usage (from the repository root)::

    python bench/round_memory.py                      # 100, 500, 2300 and 5000 targets
    python bench/round_memory.py --sizes 100 500 --no-old

Every target is ``http://127.0.0.1:PORT/size/204800?n=i``: a loopback HTTP server (in this
process) answering a 200 KB page, no DNS. Each round runs in a fresh child process, into a
throw-away SQLite store, and the child reports its peak resident set (``VmHWM``) and its RSS
once the round is stored (``VmRSS``), from ``/proc/self/status``.

Printed, all measured in the same run:

- the baseline: a child that imported everything a round needs and measured nothing;
- the round as ``probe run`` and the daemon run it now (:func:`probe.rounds.service.run_round`:
  measurements stored in batches as they end, nothing kept per target);
- the old behaviour, for comparison: :func:`probe.rounds.runner.measure_round` keeps every
  result, then one ``finish_round`` transaction stores them all (what ``run_round`` did
  before issue 12). ``--no-old`` skips it (at 5000 targets it needs about 3 GB).

Asserts nothing (Linux only: /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback servers live in tests/

PAGE_BYTES = 200 * 1024
SIZES = (100, 500, 2300, 5000)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(mode: str, target_list: Path, db: Path) -> None:
    """Run one round (or, for ``baseline``, only the imports) and print its figures as JSON."""
    logging.disable(logging.INFO)  # httpx logs every request
    from measurements.store.installation import Installation
    from measurements.store.store import open_store
    from probe import __version__
    from probe.rounds import runner, service
    from probe.rounds.settings import Measure, Settings, Targets, Tests

    settings = Settings(
        measure=Measure(resolvers=(), use_system_resolver=True, allow_loopback=True),
        targets=Targets(lists=(str(target_list),)),
        tests=Tests.web_only(),  # the families would reach the real services
    )
    plan = service.plan_round(settings)
    t0 = time.perf_counter()
    n = 0
    with open_store(f"sqlite:///{db}", installation=Installation.load(db.parent)) as store:
        if mode == "new":
            report = asyncio.run(service.run_round(plan, store))
            n = report.n_measured
        elif mode == "old":
            rid = store.begin_round(n_targets=len(plan.targets), software_version=__version__)
            results = asyncio.run(runner.measure_round(plan.targets, config=plan.config))
            measured = [r.measurement for r in results if r.measurement is not None]
            store.finish_round(rid, measured, targets=list(plan.targets))
            n = len(measured)
            del results, measured
    seconds = time.perf_counter() - t0
    print(json.dumps({"peak": _status_mb("VmHWM"), "after": _status_mb("VmRSS"), "n": n, "s": seconds}))


def run_child(mode: str, target_list: Path, db: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(target_list), str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} round failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="targets per round")
    parser.add_argument("--no-old", action="store_true", help="skip the old behaviour's rounds")
    args = parser.parse_args()
    from tests.servers.http_server import http_server

    with tempfile.TemporaryDirectory(prefix="reachprobe-bench-") as tmp, http_server() as web:
        work = Path(tmp)
        web.requests.clear()
        print(
            f"round memory: loopback targets answering {PAGE_BYTES // 1024} KB pages;"
            " each round in a fresh process"
        )
        base = run_child("baseline", _write_list(work, web.port, 1), work / "base.sqlite3")
        print(f"baseline  python + imports, nothing measured:   peak {base['peak']:6.1f} MB")
        modes = ("new",) if args.no_old else ("new", "old")
        for n in args.sizes:
            target_list = _write_list(work, web.port, n)
            for mode in modes:
                db = work / f"{mode}-{n}.sqlite3"
                got = run_child(mode, target_list, db)
                web.requests.clear()  # the server (this process) remembers every request
                db.unlink()
                label = "now (batches)" if mode == "new" else "old (all kept)"
                print(
                    f"{n:5d} targets  {label:<15}: peak {got['peak']:7.1f} MB"
                    f" (+{got['peak'] - base['peak']:6.1f} over the baseline), after {got['after']:6.1f} MB,"
                    f" {int(got['n'])} stored in {got['s']:5.1f} s"
                )


def _write_list(directory: Path, port: int, n: int) -> Path:
    path = directory / f"targets-{n}.csv"
    rows = "".join(
        f"http://127.0.0.1:{port}/size/{PAGE_BYTES}?n={i},NEWS,News,2024-01-01,bench,\n" for i in range(n)
    )
    path.write_text(
        "url,category_code,category_description,date_added,source,notes\n" + rows, encoding="utf-8"
    )
    return path


if __name__ == "__main__":
    main()
