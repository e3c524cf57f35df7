"""``probe helper serve`` as a process: it serves, stops cleanly on SIGTERM, refuses a bad certificate."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from probe.cli import main


def test_serves_until_sigterm_then_exits_0() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "probe.cli", "helper", "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        code, rest, reply = _serve_then_stop(process)
    assert reply.json()["probe_asn"] == "AS0"
    assert code == 0
    assert rest == ""  # no access log, no traceback, nothing about the client


def _serve_then_stop(process: subprocess.Popen[str]) -> tuple[int, str, httpx.Response]:
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.fullmatch(r"probe helper: serving on (http://127\.0\.0\.1:\d+/)\n", line)
        assert match, line
        reply = httpx.get(match.group(1) + "whoami", timeout=10)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
        rest = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    return code, rest, reply


def test_an_unusable_certificate_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate\n")
    argv = ["helper", "serve", "--listen", "127.0.0.1:0", "--tls-cert", str(bad)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"probe: error: --tls-cert {bad}: ") and err.count("\n") == 1
