"""``probe collector serve`` as an operator runs it: HTTPS, tokens, SIGTERM; bad input exits 2."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trustme

from probe.cli import main
from tests.collector.documents import open_request, spec_measurement

TOKEN = "fleet-token-0123456789abcdef"


def test_serve_over_https_with_tokens(tmp_path: Path, ca: trustme.CA, client_context: ssl.SSLContext) -> None:
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
    argv = ["collector", "serve", "--listen", "127.0.0.1:0", "--db", db, "--tls-cert", str(chain),
            "--tls-key", str(key), "--tokens", str(tokens)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    code = "import sys; from probe.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.fullmatch(
            r"probe collector: serving on (https://127\.0\.0\.1:[0-9]+)/ into \S+ \(1 token\(s\)\)\n", line
        )
        assert found, line
        with httpx.Client(base_url=found.group(1), verify=client_context, timeout=30) as client:
            assert client.post("/report", json=open_request()).status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            report_id = client.post("/report", json=open_request(), headers=auth).json()["report_id"]
            doc = {"format": "json", "content": spec_measurement(report_id)}
            assert client.post(f"/report/{report_id}", json=doc, headers=auth).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert main(["export", "--db", db, "--format", "jsonl"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "localhost:1"], "probe: error: --listen localhost:1: the host must be an IP address\n"),
        (["--listen", "127.0.0.1:0", "--tls-key", "k.pem"], "probe: error: --tls-key needs --tls-cert\n"),
        (["--listen", "127.0.0.1:0", "--tokens", "missing"],
         "probe: error: --tokens missing: No such file or directory\n"),
    ],
)  # fmt: skip
def test_bad_input_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["collector", "serve", "--db", f"sqlite:///{tmp_path / 'c.sqlite3'}", *args]) == 2
    assert capsys.readouterr().err == message


def test_the_database_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collector", "serve", "--listen", "127.0.0.1:0"]) == 2
    assert capsys.readouterr().err == "probe: error: Missing option '--db'.\n"
