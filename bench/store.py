"""Benchmark the measurement store: insert rate, and CSV export against ``sqlite3 -csv``.

Usage (from the repository root)::

    python bench/store.py            # 1,000,000 measurements (several minutes)
    python bench/store.py --n 50000  # quick

It stores ``--n`` realistic measurements (every verdict kind, ~2.8 KB of OONI JSON each) of
2,300 targets through ``Store.finish_round`` in rounds of ``--per-round``, the targets with
test-list metadata as people write it (notes and descriptions with commas, quotes, line
breaks and non-ASCII text, some URLs with a comma or a non-ASCII path: most lines of the CSV
need quoting; ``--plain`` for targets without metadata), then exports them all as CSV
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
does, interleaved; the best of ``--repeat`` counts. Two floors: the same SELECT fetched
through Python's ``sqlite3`` and nothing written — what any export written in Python over
that module costs before it formats a cell — and the export's own paged read with nothing
written (``committed_pages``: short read transactions, so that an export beside the daemon
never holds the WAL back). Prints numbers and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the measurement factory lives in tests/

from sqlalchemy.dialects import sqlite as sqlite_dialect

from measurements.store.export import committed_pages, csv_query, export
from measurements.store.installation import Installation
from measurements.store.rows import TargetInfo
from measurements.store.store import open_store
from probe.model import Measurement
from probe.serialize import to_json
from tests.storage.factories import BASE
from tests.storage.factories import make_round as _templates

N_TARGETS = 2300
DESCRIPTIONS = (
    "News Media", "Human Rights Issues", "Political Criticism", "Religion, Belief and Conversion",
    "LGBT, Gender & Sexuality", "Social Networking",
)  # fmt: skip
NOTES = (
    "", "", "",
    'Blocked since 2024, per a "PTA" order',
    "Reported by volunteers\nsee the list's issue 12, row 3",
    "بلاک شدہ ویب سائٹ، پاکستان میں",
    'Title: "News, Views & More" — édition française',
)  # fmt: skip
"""Test-list notes as people write them: most empty, the rest with commas, quotes, line
breaks and non-ASCII text (four rows in seven need the csv writer's quoting)."""


def target_of(k: int, *, realistic: bool) -> TargetInfo:
    """Target *k* of the bench's list, with test-list metadata when *realistic*."""
    if not realistic:
        return TargetInfo(f"https://site{k}.example/")
    url = f"https://site{k}.example/"
    if k % 5 == 1:
        url += "search?q=a,b&lang=ur"  # a comma in the URL
    elif k % 7 == 2:
        url += "wiki/پاکستان"  # a non-ASCII path
    return TargetInfo(
        url, "NEWS", DESCRIPTIONS[k % len(DESCRIPTIONS)], "2024-01-01", "citizenlab", NOTES[k % len(NOTES)]
    )


def rounds(
    n: int, per_round: int, *, realistic: bool
) -> Iterator[tuple[list[Measurement], list[TargetInfo]]]:
    """*n* distinct measurements (fresh UUID and time each) of :data:`N_TARGETS` targets, in
    rounds of *per_round*, with the targets they measured."""
    templates = _templates(70)  # 10 of each verdict kind
    for first in range(0, n, per_round):
        batch, targets = [], {}
        for i in range(first, min(n, first + per_round)):
            t = templates[i % len(templates)]
            when = BASE + timedelta(seconds=i)
            target = target_of(i % N_TARGETS, realistic=realistic)
            targets[target.url] = target
            batch.append(
                dataclasses.replace(
                    t, measurement_uid=str(uuid.uuid4()), input=target.url,
                    measurement_start_time=when, test_start_time=when,
                )
            )  # fmt: skip
        yield batch, list(targets.values())


def insert(db: Path, n: int, per_round: int, *, realistic: bool) -> float:
    """Store *n* measurements; return the wall time in seconds."""
    elapsed = 0.0
    # The installation (id, round locks) beside the throw-away database, not in the user's data dir.
    with open_store(f"sqlite:///{db}", installation=Installation.load(db.parent)) as store:
        for batch, targets in rounds(n, per_round, realistic=realistic):
            t0 = time.perf_counter()
            store.finish_round(store.begin_round(n_targets=len(batch)), batch, targets=targets)
            elapsed += time.perf_counter() - t0
    return elapsed


def serialize_cost(sample: int = 5000) -> float:
    """Seconds per measurement spent in ``probe.serialize.to_json`` alone."""
    batch, _ = next(rounds(sample, sample, realistic=False))
    t0 = time.perf_counter()
    for m in batch:
        to_json(m)
    return (time.perf_counter() - t0) / sample


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children (the sqlite3 shell)."""
    own = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + children.ru_utime + children.ru_stime


def export_ours(db: Path, out: Path) -> tuple[float, float, int]:
    with open_store(f"sqlite:///{db}") as store, out.open("w", newline="", encoding="utf-8") as f:
        t0, c0 = time.perf_counter(), _cpu()
        rows = export(store, f, format="csv")
        f.flush()
        return time.perf_counter() - t0, _cpu() - c0, rows


def paged_fetch_only(db: Path) -> tuple[float, float]:
    """The export's own read, writing nothing: the pages of ``committed_pages`` (short read
    transactions, each resuming after the last row of the one before: what keeps the WAL
    bounded beside a daemon), fetched as the export fetches them."""
    with open_store(f"sqlite:///{db}") as store:
        t0, c0 = time.perf_counter(), _cpu()
        with closing(committed_pages(store, csv_query(), raw=True)) as pages:
            for _ in pages:
                pass
        return time.perf_counter() - t0, _cpu() - c0


def the_query() -> str:
    return str(csv_query().compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True}))


def export_sqlite3_shell(db: Path, out: Path) -> tuple[float, float]:
    with out.open("wb") as f:
        t0, c0 = time.perf_counter(), _cpu()
        subprocess.run(["sqlite3", "-csv", "-header", str(db), the_query()], stdout=f, check=True)
        return time.perf_counter() - t0, _cpu() - c0


def export_raw_cursor(db: Path, out: Path) -> tuple[float, float]:
    con = sqlite3.connect(db)
    with out.open("w", newline="", encoding="utf-8") as f:
        t0, c0 = time.perf_counter(), _cpu()
        cur = con.execute(the_query())
        writer = csv.writer(f)
        writer.writerow([d[0] for d in cur.description])
        writer.writerows(cur)
        f.flush()
        elapsed = time.perf_counter() - t0, _cpu() - c0
    con.close()
    return elapsed


def fetch_only(db: Path) -> tuple[float, float]:
    """Python's ``sqlite3`` fetching the same SELECT and writing nothing: the floor of any
    export written in Python over that module (the rows become Python tuples of str)."""
    con = sqlite3.connect(db)
    t0, c0 = time.perf_counter(), _cpu()
    cur = con.execute(the_query())
    while cur.fetchmany(1000):
        pass
    elapsed = time.perf_counter() - t0, _cpu() - c0
    con.close()
    return elapsed


def records(path: Path) -> int:
    """CSV records in *path*, header included."""
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f))


def store_measurements(db: Path, n: int, per_round: int, *, realistic: bool) -> None:
    """Fill a new *db* with *n* measurements and print the insert rate."""
    db.unlink(missing_ok=True)
    rows = "realistic test-list rows (commas, quotes, line breaks, non-ASCII)" if realistic else "plain rows"
    print(f"storing {n:,} measurements ({rows}) in rounds of {per_round:,} into {db} ...", flush=True)
    seconds = insert(db, n, per_round, realistic=realistic)
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
    times: dict[str, list[tuple[float, float]]] = {
        "ours": [], "paged": [], "shell": [], "python": [], "fetch": []
    }  # fmt: skip
    rows = 0
    for _ in range(repeat):  # interleaved, so a busy moment does not favour one side
        if shell:
            times["shell"].append(export_sqlite3_shell(db, work / "baseline.csv"))
        wall, cpu, rows = export_ours(db, work / "ours.csv")
        times["ours"].append((wall, cpu))
        times["paged"].append(paged_fetch_only(db))
        times["python"].append(export_raw_cursor(db, work / "python.csv"))
        times["fetch"].append(fetch_only(db))
    # Best wall time, and best CPU time (user + system: on a busy machine the steadier figure).
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in times.items() if v}
    base = best["shell"] if shell else best["python"]
    label = "sqlite3 -csv" if shell else "python sqlite3 + csv.writer"
    print(f"CSV export of {rows:,} measurements, same SELECT, best of {repeat} (wall, CPU):")
    for key, name, note in [
        ("ours", "export (ours)", ""),
        ("paged", "export's paged read only", "  (committed_pages: the rows read, nothing written)"),
        ("shell", "sqlite3 -csv (C shell)", ""),
        ("python", "python sqlite3 + csv.writer", "  (raw cursor, no spreadsheet check)"),
        ("fetch", "python sqlite3, fetch only", "  (the rows fetched, nothing written)"),
    ]:
        if key in best:
            wall, cpu = best[key]
            print(f"  {name:29s} {wall:6.2f} s  {rows / wall:>9,.0f} rows/s   CPU {cpu:6.2f} s{note}")
    for i, kind in enumerate(("wall", "CPU")):
        print(f"floors / {label} ({kind}): python sqlite3 fetch only {best['fetch'][i] / base[i]:.2f}x, "
              f"the export's paged read only {best['paged'][i] / base[i]:.2f}x")  # fmt: skip
    for i, kind in enumerate(("wall", "CPU")):
        ours = best["ours"][i]
        print(f"ratio export / {label} ({kind}): {ours / base[i]:.2f}x (issue 12: within 1.5x); "
              f"export / python sqlite3 + csv.writer: {ours / best['python'][i]:.2f}x")  # fmt: skip
    quoted = sum(line.startswith('"') or ',"' in line for line in (work / "ours.csv").open(encoding="utf-8"))
    print(f"(lines of the export with a quoted cell: {quoted:,})")
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
    parser.add_argument(
        "--plain", action="store_true", help="targets without test-list metadata (no cell needs quoting)"
    )
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="reachprobe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.sqlite3"
    try:
        if args.reuse and db.exists():
            compare_exports(db, work, args.repeat)
            return
        store_measurements(db, args.n, args.per_round, realistic=not args.plain)
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
