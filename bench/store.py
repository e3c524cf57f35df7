"""Benchmark the measurement store: insert rate, and CSV export against ``sqlite3 -csv``.

Usage (from the repository root)::

    python bench/store.py            # 1,000,000 measurements (several minutes)
    python bench/store.py --n 50000  # quick

It stores ``--n`` realistic measurements (every verdict kind, ~2.8 KB of OONI JSON each)
through ``Store.finish_round`` in rounds of ``--per-round``, then exports them all as CSV
to a file with ``measurements.store.export.export`` (what ``probe export --format csv -o FILE``
runs, less the CLI's fsync) and, in the same run, gives the very SELECT that export runs
(``csv_query()``, whose formatting in SQL the shell then runs too) to the ``sqlite3``
command-line shell (``sqlite3 -csv -header``; Debian package ``sqlite3``): the same rows and
columns from the same database work, so the ratio is what the export adds in Python. The
shell writes no spreadsheet escapes, and quotes and prints floats its own way, so the files
differ in a few bytes; the bench checks that they hold the same number of records.

A third line, for scale, runs the same SELECT through Python's ``sqlite3`` module into
``csv.writer`` (no spreadsheet check); it is also the baseline when the shell is missing,
and the output then says so. The exports run in a fresh interpreter, as ``probe export``
does, interleaved; the best of ``--repeat`` counts. Prints numbers and ratios; asserts
nothing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the measurement factory lives in tests/

from sqlalchemy.dialects import sqlite as sqlite_dialect

from measurements.store.export import csv_query, export
from measurements.store.installation import Installation
from measurements.store.store import open_store
from probe.model import Measurement
from probe.serialize import to_json
from tests.storage.factories import BASE
from tests.storage.factories import make_round as _templates


def rounds(n: int, per_round: int) -> Iterator[list[Measurement]]:
    """*n* distinct measurements (fresh UUID, URL and time each) in rounds of *per_round*."""
    templates = _templates(70)  # 10 of each verdict kind
    for first in range(0, n, per_round):
        batch = []
        for i in range(first, min(n, first + per_round)):
            t = templates[i % len(templates)]
            when = BASE + timedelta(seconds=i)
            batch.append(
                dataclasses.replace(
                    t, measurement_uid=str(uuid.uuid4()), input=f"https://site{i % 2300}.example/",
                    measurement_start_time=when, test_start_time=when,
                )
            )  # fmt: skip
        yield batch


def insert(db: Path, n: int, per_round: int) -> float:
    """Store *n* measurements; return the wall time in seconds."""
    elapsed = 0.0
    # The installation (id, round locks) beside the throw-away database, not in the user's data dir.
    with open_store(f"sqlite:///{db}", installation=Installation.load(db.parent)) as store:
        for batch in rounds(n, per_round):
            t0 = time.perf_counter()
            store.finish_round(store.begin_round(n_targets=len(batch)), batch)
            elapsed += time.perf_counter() - t0
    return elapsed


def serialize_cost(sample: int = 5000) -> float:
    """Seconds per measurement spent in ``probe.serialize.to_json`` alone."""
    batch = next(rounds(sample, sample))
    t0 = time.perf_counter()
    for m in batch:
        to_json(m)
    return (time.perf_counter() - t0) / sample


def export_ours(db: Path, out: Path) -> tuple[float, int]:
    with open_store(f"sqlite:///{db}") as store, out.open("w", newline="", encoding="utf-8") as f:
        t0 = time.perf_counter()
        rows = export(store, f, format="csv")
        f.flush()
        return time.perf_counter() - t0, rows


def the_query() -> str:
    return str(csv_query().compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True}))


def export_sqlite3_shell(db: Path, out: Path) -> float:
    with out.open("wb") as f:
        t0 = time.perf_counter()
        subprocess.run(["sqlite3", "-csv", "-header", str(db), the_query()], stdout=f, check=True)
        return time.perf_counter() - t0


def export_raw_cursor(db: Path, out: Path) -> float:
    con = sqlite3.connect(db)
    with out.open("w", newline="", encoding="utf-8") as f:
        t0 = time.perf_counter()
        cur = con.execute(the_query())
        writer = csv.writer(f)
        writer.writerow([d[0] for d in cur.description])
        writer.writerows(cur)
        f.flush()
        elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def records(path: Path) -> int:
    """CSV records in *path*, header included."""
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f))


def store_measurements(db: Path, n: int, per_round: int) -> None:
    """Fill a new *db* with *n* measurements and print the insert rate."""
    db.unlink(missing_ok=True)
    print(f"storing {n:,} measurements in rounds of {per_round:,} into {db} ...", flush=True)
    seconds = insert(db, n, per_round)
    per = serialize_cost()
    print(f"insert: {n / seconds:,.0f} measurements/s ({seconds:.1f} s, finish_round end to end)")
    print(
        f"        of which OONI JSON (probe.serialize.to_json): {per * 1e6:.0f} µs each, "
        f"{per * n / seconds:.0%} of the time;"
    )
    print(f"        storage alone ≈ {n / max(seconds - per * n, 1e-9):,.0f} measurements/s", flush=True)


def compare_exports(db: Path, work: Path, repeat: int) -> None:
    """Time the CSV exports of *db* into *work* and print them with their ratios."""
    print(f"database: {db.stat().st_size / 1e6:,.0f} MB", flush=True)
    shell = shutil.which("sqlite3") is not None
    if not shell:
        print("(no sqlite3 shell: install the Debian package 'sqlite3'; baseline = python sqlite3 below)")
    times: dict[str, list[float]] = {"ours": [], "shell": [], "python": []}
    rows = 0
    for _ in range(repeat):  # interleaved, so a busy moment does not favour one side
        if shell:
            times["shell"].append(export_sqlite3_shell(db, work / "baseline.csv"))
        elapsed, rows = export_ours(db, work / "ours.csv")
        times["ours"].append(elapsed)
        times["python"].append(export_raw_cursor(db, work / "python.csv"))
    best = {k: min(v) for k, v in times.items() if v}
    base = best["shell"] if shell else best["python"]
    label = "sqlite3 -csv" if shell else "python sqlite3 + csv.writer"
    print(f"CSV export of {rows:,} measurements, same SELECT, best of {repeat}:")
    for key, name, note in [
        ("ours", "export (ours)", ""),
        ("shell", "sqlite3 -csv (C shell)", ""),
        ("python", "python sqlite3 + csv.writer", "  (raw cursor, no spreadsheet check)"),
    ]:
        if key in best:
            print(f"  {name:29s} {best[key]:6.2f} s  {rows / best[key]:>9,.0f} rows/s{note}")
    print(f"ratio export / {label}: {best['ours'] / base:.2f}x (target: within 2x); "
          f"export / python sqlite3 + csv.writer: {best['ours'] / best['python']:.2f}x")  # fmt: skip
    if shell:
        ours, theirs = records(work / "ours.csv"), records(work / "baseline.csv")
        same = "the same number of" if ours == theirs else "DIFFERENT numbers of"
        print(f"(both files hold {same} CSV records: {ours - 1:,} and {theirs - 1:,}, plus the header)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="measurements to store (default 1,000,000)")
    parser.add_argument("--per-round", type=int, default=1000, help="measurements per round (default 1000)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="export the database already in --dir, no insert"
    )
    parser.add_argument("--repeat", type=int, default=3, help="export runs of each kind; the best counts")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="reachprobe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.sqlite3"
    try:
        if args.reuse and db.exists():
            compare_exports(db, work, args.repeat)
            return
        store_measurements(db, args.n, args.per_round)
        # The exports run in a fresh interpreter, as `probe export` does: in this one, the
        # heap the insert leaves behind makes the export's allocations and garbage
        # collections measurably slower (~15 %), which would be this script's cost, not the
        # export's.
        again = [sys.executable, __file__, "--dir", str(work), "--reuse", "--repeat", str(args.repeat)]
        subprocess.run(again, check=True)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
