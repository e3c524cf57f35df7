"""``probe collector serve`` as a real process on a fixed loopback port, to kill and start again."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.postgres import free_port as _free_port


class CollectorProcess:
    """``python -m probe.cli collector serve --listen 127.0.0.1:PORT --db DB``, restartable."""

    def __init__(
        self,
        db_url: str,
        log: Path,
        *,
        port: int | None = None,
        extra: tuple[str, ...] = (),
        scheme: str = "http",
    ) -> None:
        self.db_url = db_url
        self.port = port or _free_port()
        self.log = log
        self.extra = extra
        self.scheme = scheme
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "probe.cli", "collector", "serve", "--listen",
                 f"127.0.0.1:{self.port}", "--db", self.db_url, *self.extra],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"collector exited: {self.log.read_text()[-2000:]}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"collector not listening after {timeout} s: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
