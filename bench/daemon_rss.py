"""Benchmark the daemon's memory while idle between rounds (resident set size, from /proc).

Usage (from the repository root)::

    python bench/daemon_rss.py                      # 100 loopback targets, one round, then idle
    python bench/daemon_rss.py --n 100 500 2300 5000 --page-bytes 204800   # issue 12's sizes

Starts ``probe daemon`` as a real process, as a volunteer's machine runs it: a settings file
with 100 targets (or each ``--n``) on a loopback HTTP server (``http://127.0.0.1:PORT/?n=i``,
or ``/size/B?n=i`` pages of ``--page-bytes``: no DNS), a one-hour interval, a throw-away
SQLite store and data directory. Once the log says the first
round is complete, it waits a few seconds (the daemon is then idle until the next round) and
reads ``VmRSS`` (now) and ``VmHWM`` (peak) from ``/proc/PID/status``; then SIGTERM.

The daemon runs as a volunteer's ``pip install reachprobe`` has it: the development
environment also holds the test tools (pytest, selenium and its trio, …), and httpcore imports
trio whenever it is installed (+3.5 MB). So every installed distribution that the package's own
requirements do not pull in is hidden from the daemon (:func:`hide_dev_only`: a directory at
the front of ``PYTHONPATH`` whose stand-ins raise ``ImportError``), and the output lists them;
``--dev-env`` measures the development environment as it is.

The daemon measures in processes of its own (:mod:`probe.rounds.process`), so the figures are
the daemon's RSS idle after the round, its own peak, its jobs' processes' peak (the start's
and the round's ``VmHWM``, read until each exits) and the peak of the daemon and its job
together (sampled every :data:`SAMPLE_S`: what the machine must have free while a round runs).

Printed, measured in the same run: the baselines, a bare ``python`` interpreter's RSS, the
RSS of a Python that has only imported the ``probe daemon`` command and the daemon's own
modules (with the same packages hidden), and that of a round's process before it measures:
its modules, then also the HTTP/3 test's (aioquic and cryptography): the measured rounds run
the web test only (the families would reach the real services), and a round that runs
HTTP/3, on by default, imports those too.

Asserts nothing (Linux only: /proc).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback servers live in tests/

from tests.daemon_harness import child_processes
from tests.servers.http_server import http_server

IDLE_WAIT_S = 3.0


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of *pid* in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions(root: str = "reachprobe") -> set[str]:
    """The distributions ``pip install <root>`` installs: *root* and its requirements'
    closure, without extras (markers evaluated for this interpreter)."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = _canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def hide_dev_only(into: Path) -> list[str]:
    """Write stand-ins into *into* for the top-level modules of every installed distribution
    that :func:`runtime_distributions` does not list; return those distributions' names."""
    runtime = runtime_distributions()
    hidden: list[str] = []
    for dist in metadata.distributions():
        name = _canonical(dist.metadata["Name"])
        if name in runtime or name in ("pip", "setuptools", "wheel"):
            continue
        # Its files' first path parts, relative to site-packages: packages and modules.
        tops = {f.parts[0].removesuffix(".py") for f in dist.files or ()}
        tops = {t for t in tops if t.isidentifier() and not t.startswith("__")}
        if not tops:
            continue
        hidden.append(name)
        for top in tops:
            (into / f"{top}.py").write_text(
                f'raise ImportError("{top} ({name}) is a development tool, not installed for volunteers")\n'
            )
    return sorted(hidden)


def python_rss(code: str, env: dict[str, str]) -> float:
    """RSS in MB of a Python that ran *code* (in *env*) and then waits."""
    proc = subprocess.Popen(
        [sys.executable, "-c", f"{code}\nimport sys, time\nprint('ready', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return rss_mb(proc.pid)[0]
    finally:
        proc.kill()
        proc.wait()


class RoundSampler(threading.Thread):
    """Samples, every :data:`SAMPLE_S`, the RSS of the daemon plus its rounds' processes, and
    the round's process's own peak (``VmHWM``: the kernel's, not a sample)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_sum_mb = 0.0
        self.peak_round_mb = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            try:
                total = rss_mb(self.pid)[0]
                for child in child_processes(self.pid):
                    now, peak = rss_mb(child)
                    total += now
                    self.peak_round_mb = max(self.peak_round_mb, peak)
            except (OSError, KeyError):  # a process ended between the listing and the read
                continue
            self.peak_sum_mb = max(self.peak_sum_mb, total)


SAMPLE_S = 0.01


def idle_daemon(work: Path, env: dict[str, str]) -> tuple[float, float, float, float, float]:
    """Start the daemon on *work*'s settings; after its first round: (seconds to it, RSS, peak
    RSS, the round process's peak RSS, the sampled peak of the daemon's and its round's sum)."""
    env = {**env, "XDG_DATA_HOME": str(work / "data")}
    probe = Path(sys.executable).with_name("probe")
    daemon = subprocess.Popen(
        [str(probe), "daemon", "--config", str(work / "settings.toml")],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    sampler = RoundSampler(daemon.pid)
    sampler.start()
    try:
        assert daemon.stderr is not None
        t0 = time.monotonic()
        for line in daemon.stderr:
            if "complete" in line and "round" in line:
                break
        else:
            raise SystemExit(f"the daemon exited before a round completed (exit {daemon.wait()})")
        first_round_s = time.monotonic() - t0
        sampler.done.set()
        time.sleep(IDLE_WAIT_S)
        return (first_round_s, *rss_mb(daemon.pid), sampler.peak_round_mb, sampler.peak_sum_mb)
    finally:
        sampler.done.set()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100], help="targets in the round (default 100)")
    parser.add_argument("--page-bytes", type=int, default=0, help="page size (default: the small / page)")
    parser.add_argument(
        "--dev-env", action="store_true", help="do not hide the development tools (pytest, selenium, ...)"
    )
    args = parser.parse_args()
    page = f"size/{args.page_bytes}" if args.page_bytes else ""
    results: dict[str, tuple[float, float, float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="reachprobe-bench-") as tmp, http_server() as web:
        env = dict(os.environ)
        hidden: list[str] = []
        if not args.dev_env:
            stand_ins = Path(tmp) / "hidden"
            stand_ins.mkdir()
            hidden = hide_dev_only(stand_ins)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stand_ins), env.get("PYTHONPATH")]))
        for n_targets in args.n:
            work = Path(tmp) / str(n_targets)
            work.mkdir()
            rows = "".join(
                f"http://127.0.0.1:{web.port}/{page}?n={i},NEWS,News,2024-01-01,bench,\n"
                for i in range(n_targets)
            )
            (work / "targets.csv").write_text(
                "url,category_code,category_description,date_added,source,notes\n" + rows
            )
            (work / "settings.toml").write_text(
                "[schedule]\ninterval_minutes = 60\njitter_minutes = 0\n"
                "[measure]\nresolvers = []\nallow_loopback = true\n"
                "[tests]\nwhatsapp = false\ntelegram = false\nsignal = false\n"
                "facebook_messenger = false\nhttp3 = false\n"
                '[targets]\nlists = ["targets.csv"]\n'
                f'[storage]\ndatabase_url = "sqlite:///{work / "m.sqlite3"}"\n'
            )
            results[f"{n_targets} targets, a new database (created and migrated at start)"] = idle_daemon(
                work, env
            )
            if n_targets == args.n[0]:
                results[f"{n_targets} targets, an existing database (a restart)"] = idle_daemon(work, env)
            web.requests.clear()  # the server remembers every request

        bare = python_rss("pass", env)
        imported = python_rss("from probe.cli import daemon\nimport probe.rounds.daemon", env)
        # A round's process: its modules, without and with the HTTP/3 test's (aioquic,
        # cryptography): the measured daemons run the web test only.
        job_code = "import probe.rounds.jobs"
        web = python_rss(job_code, env)
        with_h3 = python_rss(job_code + "\nimport probe.nettests.http3", env)
    size = f"{args.page_bytes / 1024:g} KB pages" if args.page_bytes else "the small / page"
    print(f"daemon: loopback targets answering {size}, one round, then idle {IDLE_WAIT_S:g} s")
    if args.dev_env:
        print("(the development environment as it is: test tools importable)")
    else:
        names = ", ".join(hidden)
        print(f"(as a volunteer's install: {len(hidden)} development-only distributions hidden: {names})")
    for case, (first_round_s, now_mb, peak_mb, round_mb, sum_mb) in results.items():
        print(
            f"idle RSS {now_mb:5.1f} MB (daemon's peak {peak_mb:5.1f} MB; its jobs' processes peak"
            f" {round_mb:5.1f} MB; both, sampled peak {sum_mb:5.1f} MB; first round {first_round_s:5.1f} s)"
            f" with {case}"
        )
    print(f"baseline  bare python:                                  {bare:5.1f} MB")
    print(f"baseline  python + the daemon's modules (what it idles with): {imported:5.1f} MB")
    print(f"baseline  a round's process, its modules before it measures:  {web:5.1f} MB")
    print(
        f"baseline  ... + the HTTP/3 test's:                          {with_h3:5.1f} MB "
        f"(+{with_h3 - web:.1f} MB in a round's process once the family runs: on by default, off here)"
    )


if __name__ == "__main__":
    main()
