"""``probe measure`` through probe.cli.main (exit codes, stdout/stderr) and the installed script.

Every URL is an IP literal or a name of the scripted loopback resolver, with the system
resolver off: no test leaves loopback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from probe.cli import main
from tests.servers.dns_server import ScriptedDNSServer
from tests.servers.http_server import HTTPServer
from tests.servers.tcp_server import closed_port
from tests.test_webconnectivity import HOSTILE_LOCATIONS, redirect_to

LOCAL = ("--no-system-resolver", "--allow-loopback")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``probe measure ARGS…`` in this process: (exit status, stdout, stderr)."""
    status = main(["measure", *args, *LOCAL])
    out, err = capsys.readouterr()
    return status, out, err


def test_json_is_one_object(
    capsys: pytest.CaptureFixture[str], loopback_dns: ScriptedDNSServer, http_site: HTTPServer
) -> None:
    url = http_site.url("/")
    status, out, err = run(capsys, url, "--json", "--resolver", loopback_dns.address)
    assert (status, err) == (0, "")
    assert out.endswith("}\n") and out.count("\n") == 1
    doc = json.loads(out)
    assert (doc["input"], doc["test_name"], doc["probe_ip"]) == (url, "web_connectivity", "127.0.0.1")
    (request,) = doc["test_keys"]["requests"]
    assert request["response"]["code"] == 200


def test_summary_one_line_per_step_failures_highlighted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, loopback_dns: ScriptedDNSServer
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich styles only what it believes is a terminal
    monkeypatch.setenv("COLUMNS", "200")  # wrapping is test_summary_lines_do_not_wrap's business
    port = closed_port()
    status, out, err = run(capsys, f"http://example.com:{port}/", "--resolver", loopback_dns.address)
    assert (status, err) == (0, "")  # the measurement ran: a refused port is a finding
    lines = out.splitlines()
    plain = [ANSI.sub("", line) for line in lines]
    assert plain[0].startswith(f"http://example.com:{port}/  (")
    assert [line.split()[0] for line in plain[1:-1]] == ["dns", "dns", "tcp"]
    assert plain[1].split("→")[1].split()[0] == "127.0.0.1"
    assert "✗ dns_no_answer" in plain[2]
    assert re.fullmatch(rf"  tcp  127\.0\.0\.1:{port}  → ✗ connection_refused  \d+ ms", plain[3])
    assert plain[-1].startswith("verdict: blocking=null accessible=null ")
    red = "\x1b[1;31m"
    assert f"{red}✗ connection_refused" in lines[3]
    assert red not in lines[1]  # the A answer is no failure


def test_summary_lines_do_not_wrap(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, http_site: HTTPServer
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    url = http_site.url("/final?" + "x" * 100, host="127.0.0.1")
    status, out, _ = run(capsys, url)
    assert status == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["tcp", "http"]
    assert url in lines[2]
    assert len(lines) == 4


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["http://exa mple.com/"], "invalid host name 'exa mple.com' in URL 'http://exa mple.com/'"),
        (["http:///nohost"], "no host name in URL 'http:///nohost'"),
        (["ftp://example.com/"], "unsupported URL scheme 'ftp' in 'ftp://example.com/'"),
        (["http://127.0.0.1:9/", "--resolver", "dns.google"], "invalid resolver 'dns.google'"),
        (["http://127.0.0.1:9/", "--resolver", "1.1.1.1:99999"], "invalid resolver '1.1.1.1:99999'"),
        (["http://127.0.0.1:9/", "--ca-file", "{tmp}/missing.pem"], "--ca-file {tmp}/missing.pem"),
        (["http://127.0.0.1:9/", "--ca-file", "{tmp}/garbage.pem"], "not a PEM CA file"),
        (["http://127.0.0.1:9/", "--ca-file", "{tmp}"], "--ca-file {tmp}"),
        (["http://127.0.0.1:9/", "--timeout", "soon"], "'--timeout'"),
        (["http://127.0.0.1:9/", "--timeout", "0"], "'--timeout'"),
        (["http://127.0.0.1:9/", "--timeout", "-1"], "'--timeout'"),
        (["http://127.0.0.1:9/", "--control", "http://[::1/"], "--control: expected an http(s):// URL"),
        (["http://127.0.0.1:9/", "--control", "ftp://127.0.0.1/"], "unsupported URL scheme 'ftp'"),
        (["http://127.0.0.1:9/", "--control", "notaurl"], "unsupported URL scheme ''"),
        (["http://127.0.0.1:9/", "--control", "http://a\x01b/"], "with control characters"),
    ],
    ids=[
        "malformed-url",
        "no-host",
        "ftp-scheme",
        "resolver-name",
        "resolver-port",
        "ca-missing",
        "ca-not-pem",
        "ca-directory",
        "timeout-text",
        "timeout-zero",
        "timeout-negative",
        "control-unclosed-bracket",
        "control-ftp",
        "control-not-a-url",
        "control-control-character",
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], reason: str
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    status, out, err = run(capsys, *(arg.format(tmp=tmp_path) for arg in args))
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("probe: error: ")
    assert reason.format(tmp=tmp_path) in err


def _installed_script() -> str:
    script = shutil.which("probe", path=sysconfig.get_path("scripts"))
    assert script is not None, "the probe console script is not installed in this environment"
    return script


def test_installed_console_script(http_site: HTTPServer) -> None:
    url = http_site.url("/final", host="127.0.0.1")
    done = subprocess.run(
        [_installed_script(), "measure", url, "--json", *LOCAL],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    (request,) = json.loads(done.stdout)["test_keys"]["requests"]
    assert (request["response"]["code"], request["response"]["body"]) == (200, "final")

    bad = subprocess.run(
        [_installed_script(), "measure", "ftp://example.com/"], capture_output=True, text=True, timeout=30
    )
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.startswith("probe: error: unsupported URL scheme 'ftp'")


def test_summary_says_how_the_body_came(capsys: pytest.CaptureFixture[str], http_site: HTTPServer) -> None:
    # /trickle: one body byte every 0.2 s until the 1 s deadline: a transfer still under way.
    status, out, _ = run(capsys, http_site.url("/trickle", host="127.0.0.1"), "--timeout", "1")
    assert status == 0
    (line,) = [ANSI.sub("", line) for line in out.splitlines() if line.lstrip().startswith("http ")]
    assert re.search(r"✗ generic_timeout_error  \d+ ms  [1-5] body bytes in 0\.\d\d s \(0 kbit/s\)$", line), (
        line
    )
    assert "blocking=null accessible=null" in out.splitlines()[-1]  # no control: nothing to compare


@pytest.mark.parametrize(
    ("location", "failure"), HOSTILE_LOCATIONS, ids=[repr(loc)[2:-1] for loc, _ in HOSTILE_LOCATIONS]
)
@pytest.mark.parametrize("output", ["--json", "summary"])
def test_hostile_redirect_is_a_finding_not_a_traceback(
    capsys: pytest.CaptureFixture[str], http_site: HTTPServer, location: bytes, failure: str, output: str
) -> None:
    url = redirect_to(http_site, location, host="127.0.0.1")
    status, out, err = run(capsys, url, "--control", "none", *(["--json"] if output == "--json" else []))
    assert (status, err) == (0, "")
    if output == "--json":
        (request,) = json.loads(out)["test_keys"]["requests"]
        assert (request["failure"], request["response"]["code"]) == (failure, 302)
    else:
        assert f"✗ {failure}" in ANSI.sub("", out)
