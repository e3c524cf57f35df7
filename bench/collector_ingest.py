"""Benchmark the collector: measurements/s through ``probe collector serve`` into PostgreSQL.

Usage (from the repository root)::

    python bench/collector_ingest.py                 # 20,000 measurements, 16 clients
    python bench/collector_ingest.py --n 2000 --clients 4
    python bench/collector_ingest.py --db postgresql+psycopg://user@host/empty_db

It starts a throw-away PostgreSQL cluster (as the storage tests do, fsync off; ``--durable``
turns fsync, ``synchronous_commit`` and ``full_page_writes`` back on; ``--db`` uses an existing
empty database instead) and ``probe collector serve`` on loopback in its own process, as an
operator runs it. ``--clients`` concurrent HTTP/1.1 clients (asyncio, httpx, kept-alive
connections) then submit ``--n`` realistic Web Connectivity measurements (the probe's own
JSON, every verdict kind, ~3 KB each; each with its OONI-form ``measurement_uid``) to
``--reports`` reports opened beforehand: the rate is submissions acknowledged per second of
wall time, everything included (HTTP, validation, summary, the idempotent INSERT and the
round's counts, one transaction per measurement).

The baseline, in the same run and the same database: the rows the collector wrote are read
back with ``COPY … TO``, the table truncated, and written again with one ``COPY … FROM`` into the same
table with the same indexes — the fastest way PostgreSQL takes those rows. The ratio says what
the collector's protocol costs over bulk loading. The collector's own CPU time per measurement
(its process's user + system time over the submissions) says what one core of it takes, whatever
else the machine runs. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the factories and the cluster live in tests/

import httpx
import psycopg

from probe.serialize import as_dict, new_measurement_uid
from tests.postgres import _Cluster, _pg_bin
from tests.storage.factories import make_round

COLUMNS = (
    "measurement_uid, round_id, target_id, test_name, input, measured_at, runtime_s, probe_asn, probe_cc, "
    "blocking, accessible, mechanism, confirmed, dns_consistency, dns_failure, tcp_failure, tls_failure, "
    "http_failure, control_failure, outcome, body"
)


def documents(n: int, report_ids: list[str]) -> list[dict[str, Any]]:
    """*n* distinct measurements, spread over *report_ids* (network AS17557, PK)."""
    templates = make_round(70)  # 10 of each verdict kind
    now = datetime.now(UTC).replace(microsecond=0)
    docs = []
    for i in range(n):
        m = dataclasses.replace(
            templates[i % len(templates)],
            input=f"https://site{i % 2300}.example/",
            measurement_start_time=now,
            test_start_time=now,
            probe_asn="AS17557",
            probe_cc="PK",
            measurement_uid=new_measurement_uid(now, test_name="web_connectivity", probe_cc="PK"),
            report_id=report_ids[i % len(report_ids)],
        )
        docs.append(as_dict(m))
    return docs


def start_collector(db: str, work: Path) -> tuple[subprocess.Popen[str], str]:
    code = "import sys; from probe.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["collector", "serve", "--listen", "127.0.0.1:0", "--db", db, "--report-rate", "1000000"]
    env = {**os.environ, "XDG_DATA_HOME": str(work)}
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    found = re.search(r"serving on (http://127\.0\.0\.1:[0-9]+)/", line)
    if found is None:
        proc.kill()
        raise SystemExit(f"the collector did not start: {line}{proc.stderr.read()}")
    return proc, found.group(1)


async def ingest(url: str, n: int, clients: int, n_reports: int) -> tuple[float, int]:
    """Open the reports, then submit *n* measurements with *clients* workers; (seconds, acknowledged)."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        opened = []
        for _ in range(n_reports):
            r = await client.post("/report", json={
                "format": "json", "data_format_version": "0.2.0", "probe_asn": "AS17557", "probe_cc": "PK",
                "software_name": "reachprobe", "software_version": "0.1.0", "test_name": "web_connectivity",
                "test_version": "0.4.3"})  # fmt: skip
            r.raise_for_status()
            opened.append(r.json()["report_id"])
        docs = documents(n, opened)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for doc in docs:
            queue.put_nowait(doc)
        acknowledged = 0

        async def worker() -> None:
            nonlocal acknowledged
            while not queue.empty():
                doc = queue.get_nowait()
                r = await client.post(f"/report/{doc['report_id']}", json={"format": "json", "content": doc})
                if r.status_code != 200:
                    raise SystemExit(f"submission refused: {r.status_code} {r.text}")
                acknowledged += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - t0
        for report_id in opened:
            (await client.post(f"/report/{report_id}/close")).raise_for_status()
    return seconds, acknowledged


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def copy_baseline(db: str) -> tuple[float, int]:
    """Read the collector's rows out with COPY, truncate the table, COPY them back in: (seconds, rows)."""
    conninfo = db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        data = bytearray()
        with conn.cursor().copy(f"COPY (SELECT {COLUMNS} FROM measurements ORDER BY id) TO STDOUT") as copy:
            for chunk in copy:
                data += chunk
        n = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]  # type: ignore[index]
        conn.execute("TRUNCATE measurements CASCADE")  # and the (empty) uploads that refer to it
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor().copy(f"COPY measurements ({COLUMNS}) FROM STDIN") as copy:
            copy.write(bytes(data))
        conn.commit()
        seconds = time.perf_counter() - t0
    return seconds, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="measurements to submit (default 20,000)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--reports", type=int, default=20, help="reports they go into (default 20)")
    parser.add_argument("--db", help="an empty PostgreSQL database URL (default: a throw-away cluster)")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="the throw-away cluster with fsync, synchronous_commit and full_page_writes on (production)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collector-bench-") as tmp:
        work = Path(tmp)
        cluster = None
        db = args.db
        if db is None:
            bindir = _pg_bin()
            if bindir is None:
                raise SystemExit("no PostgreSQL server binaries (Debian package 'postgresql'); or pass --db")
            cluster = _Cluster(bindir)
            cluster.start()
            db = cluster.url(cluster.database("bench"))
            if args.durable:
                for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                    cluster.admin(f"ALTER SYSTEM SET {setting} = on")
                cluster.admin("SELECT pg_reload_conf()")
            durability = (
                "fsync on, as in production" if args.durable else "fsync off, as the storage tests run it"
            )
            print(f"PostgreSQL: a throw-away cluster ({durability})", flush=True)
        try:
            proc, url = start_collector(db, work)
            try:
                what = f"{args.n:,} measurements with {args.clients} clients to {args.reports} reports"
                print(f"submitting {what} at {url} ...", flush=True)
                cpu0 = cpu_seconds(proc.pid)
                seconds, acknowledged = asyncio.run(ingest(url, args.n, args.clients, args.reports))
                cpu = cpu_seconds(proc.pid) - cpu0
            finally:
                proc.terminate()
                proc.wait(30)
            rate = acknowledged / seconds
            print(
                f"collector: {rate:,.0f} measurements/s ({acknowledged:,} in {seconds:.1f} s, HTTP to commit)"
            )
            per = cpu / acknowledged * 1000
            print(f"           its process's CPU: {per:.1f} ms a measurement (user + system)")
            copy_s, rows = copy_baseline(db)
            copy_rate = rows / copy_s
            print(f"COPY:      {copy_rate:,.0f} measurements/s ({rows:,} rows in {copy_s:.2f} s, same table)")
            print(f"ratio COPY / collector: {copy_rate / rate:.1f}x")
        finally:
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
