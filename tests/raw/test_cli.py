"""``probe forensics`` through probe.cli.main: exit codes, the one-line errors, JSON and text output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import trustme

from probe.cli import main
from tests.servers.tcp_server import tcp_server

Main = Callable[[list[str]], int]
# The command as `probe` runs it.
RUN_CLI = "import sys; from probe.cli import main; sys.exit(main(sys.argv[1:]))"
NO_PRIVILEGE = "probe: error: probe forensics: raw packet capture needs root or CAP_NET_RAW\n"


@pytest.fixture
def probe_main() -> Iterator[Main]:
    """``probe.cli.main``, which runs ``probe forensics``."""
    yield main


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["http://x.com/"],
            "probe: error: 'http://x.com/': forensics sends a TLS ClientHello, give an https:// URL",
        ),
        (
            ["ftp://x.com/"],
            "probe: error: unsupported URL scheme 'ftp' in 'ftp://x.com/': only http and https",
        ),
        (
            ["https://x.com/", "--address", "::1"],
            "probe: error: '::1' is not an IPv4 address (raw forensics is IPv4 only)",
        ),
        (
            ["https://x.com/", "--max-hops", "300"],
            "probe: error: Invalid value for '--max-hops': 300 is not in the range 0<=x<=255.",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    probe_main: Main, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    status = probe_main(["forensics", *args])
    out, err = capsys.readouterr()
    assert (status, out, err) == (2, "", error + "\n")


def test_without_raw_socket_privilege_exits_2(probe_main: Main, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        status = probe_main(["forensics", "https://x.com/", "--address", "127.0.0.1"])
        out, err = capsys.readouterr()
        assert (status, out, err) == (2, "", NO_PRIVILEGE)
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop CAP_NET_RAW")
    nobody = [
        setpriv,
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ]
    done = subprocess.run(
        [*nobody, sys.executable, "-c", RUN_CLI, "forensics", "https://x.com/", "--address", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # nobody has no home: scapy then caches nothing (root's XDG dirs would refuse it).
        env={
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/nonexistent",
            "XDG_CACHE_HOME": "/nonexistent/.cache",
            "XDG_CONFIG_HOME": "/nonexistent/.config",
            "XDG_DATA_HOME": "/nonexistent/.local/share",
        },
    )
    assert (done.returncode, done.stdout, done.stderr) == (2, "", NO_PRIVILEGE)


@pytest.mark.raw
def test_json_report(probe_main: Main, capsys: pytest.CaptureFixture[str], ca: trustme.CA) -> None:
    with tcp_server("tls", ca.issue_cert("x.com")) as port:
        status = probe_main(
            ["forensics", f"https://x.com:{port}/", "--address", "127.0.0.1", "--max-hops", "3", "--json"]
        )
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.endswith("}\n") and out.count("\n") == 1
    report = json.loads(out)
    assert list(report) == [
        "input", "server_name", "ip", "port", "measurement_start_time", "test_runtime_s",
        "rst_forensics", "localisation",
    ]  # fmt: skip
    assert (report["input"], report["server_name"], report["ip"], report["port"]) == (
        f"https://x.com:{port}/",
        "x.com",
        "127.0.0.1",
        port,
    )
    rst = report["rst_forensics"]
    assert list(rst) == [
        "ip", "port", "server_name", "interface", "capture_failure", "failure", "client_hello_sent",
        "client_hello_bytes", "server_answered", "syn_ack", "resets", "verdict", "signs", "elapsed_ms",
    ]  # fmt: skip
    assert (rst["verdict"], rst["failure"], rst["resets"], rst["signs"]) == ("none", None, [], [])
    assert list(rst["syn_ack"]) == ["ttl", "ip_id", "hops_estimate", "since_syn_ms"]
    located = report["localisation"]
    assert (located["server_ttl"], located["blocking_ttl"], located["failure"]) == (1, None, None)
    assert [probe["outcome"] for probe in located["probes"]] == ["server"]


@pytest.mark.raw
def test_text_report(probe_main: Main, capsys: pytest.CaptureFixture[str]) -> None:
    with tcp_server("reset_after_hello") as port:
        status = probe_main(
            ["forensics", f"https://x.com:{port}/", "--address", "127.0.0.1", "--max-hops", "0"]
        )
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"https://x.com:{port}/  127.0.0.1:{port} sni=x.com  (")
    assert lines[1].startswith("  syn-ack    ttl=64 ip_id=0 (hop ≈1)")
    assert lines[2].startswith("  reset RA   ttl=64 ip_id=")
    assert " ms after the ClientHello" in lines[2]
    assert lines[3:] == ["  tls        ✗ connection_reset", "verdict: end_host"]


@pytest.mark.raw
def test_a_capture_that_cannot_start_is_reported_not_raised(
    probe_main: Main, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["forensics", "https://x.com:9/", "--address", "127.0.0.1", "--interface", "nosuchif0"]
    status = probe_main(args)
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.splitlines()[1:] == [
        "  capture on nosuchif0: ✗ unknown_failure: [Errno 19] No such device",
        "verdict: unknown (no_capture)",
    ]
