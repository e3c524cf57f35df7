"""Run ``probe daemon`` as a real process against loopback targets, and read its log as it goes.

The targets are real loopback servers: a small HTTP server that answers (``/``), a TCP server
that accepts and never says a word (the HTTP step times out: a black hole), and a closed port
(connection refused). Settings are written to a TOML file with ``allow_loopback`` on and no
resolvers beyond the system one (the URLs are IP literals: no DNS traffic at all).
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.http_server import http_server
from tests.servers.tcp_server import closed_port, tcp_server


@dataclass(frozen=True)
class Targets:
    """Loopback URLs by behaviour."""

    answering: tuple[str, ...]
    silent: tuple[str, ...]
    refused: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.answering, *self.silent, *self.refused)


@contextmanager
def loopback_targets(answering: int = 3, silent: int = 2, refused: int = 1) -> Iterator[Targets]:
    """Start the servers; yield their URLs (several per server: distinct query strings)."""
    with ExitStack() as stack:
        web = stack.enter_context(http_server())
        hole = stack.enter_context(tcp_server("accept"))
        dead = closed_port()
        yield Targets(
            answering=tuple(f"http://127.0.0.1:{web.port}/?n={i}" for i in range(answering)),
            silent=tuple(f"http://127.0.0.1:{hole}/?n={i}" for i in range(silent)),
            refused=tuple(f"http://127.0.0.1:{dead}/?n={i}" for i in range(refused)),
        )


def write_settings(
    directory: Path,
    urls: Sequence[str],
    *,
    db_url: str,
    interval_s: float = 1.0,
    timeout_s: float = 0.5,
    retention_days: int = 365,
    ca_file: Path | None = None,
) -> Path:
    """Write ``targets.csv`` and ``settings.toml`` into *directory*; return the settings path.

    *ca_file*: the CAs the probe trusts instead of the system store (``measure.ca_file``).
    """
    rows = "".join(f"{url},NEWS,News Media,2024-01-01,test,\n" for url in urls)
    (directory / "targets.csv").write_text(
        "url,category_code,category_description,date_added,source,notes\n" + rows, encoding="utf-8"
    )
    settings = directory / "settings.toml"
    settings.write_text(
        f"""
[schedule]
interval_minutes = {interval_s / 60!r}
jitter_minutes = 0

[measure]
concurrency = 16
dns_timeout = {timeout_s!r}
tcp_timeout = {timeout_s!r}
tls_timeout = {timeout_s!r}
http_timeout = {timeout_s!r}
resolvers = []
use_system_resolver = true
allow_loopback = true
{f"ca_file = {str(ca_file)!r}" if ca_file else ""}

[tests]
whatsapp = false
telegram = false
signal = false
facebook_messenger = false
http3 = false

[targets]
lists = ["targets.csv"]

[storage]
database_url = "{db_url}"
retention_days = {retention_days}
""",
        encoding="utf-8",
    )
    return settings


def child_processes(pid: int) -> list[int]:
    """The processes *pid* started and that still run (the daemon's jobs), from ``/proc``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


@dataclass
class DaemonProcess:
    """A running ``probe daemon`` whose stderr is collected line by line."""

    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _reader: threading.Thread | None = None

    def wait_for(self, pattern: str, timeout: float = 20.0, *, count: int = 1) -> list[str]:
        """Wait until *count* log lines (from the start) match *pattern*; return them.

        Raises:
            AssertionError: the process ended, or *timeout* passed, first (with the log).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log if regex.search(line)]
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            assert left > 0, f"not {count} of {pattern!r} within {timeout} s; log:\n" + "\n".join(self.log)
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"daemon exited ({self.proc.wait()}) before {pattern!r}:\n" + "\n".join(
                self.log
            )
            self.log.append(line)

    def drain(self) -> list[str]:
        """Collect whatever the process has logged so far (after it ended: everything)."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return self.log
            if line is not None:
                self.log.append(line)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, and return the exit status."""
        self.proc.terminate()
        return self.wait(timeout)

    def wait(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        self.drain()
        return code


def start_daemon(
    settings: Path, *, preexec: Callable[[], None] | None = None, extra: Sequence[str] = ()
) -> DaemonProcess:
    """Start ``python -m probe.cli daemon --config SETTINGS`` (stdout discarded, stderr read)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe.cli", "daemon", "--config", str(settings), *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )
    daemon = DaemonProcess(proc)

    def read() -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for line in proc.stderr:
                daemon._lines.put(line.rstrip("\n"))
        daemon._lines.put(None)

    daemon._reader = threading.Thread(target=read, daemon=True)
    daemon._reader.start()
    return daemon


@contextmanager
def running_daemon(settings: Path, **kwargs: object) -> Iterator[DaemonProcess]:
    """:func:`start_daemon`; on exit, kill it if the test has not stopped it."""
    daemon = start_daemon(settings, **kwargs)  # type: ignore[arg-type]
    try:
        yield daemon
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
        daemon.wait(10)
