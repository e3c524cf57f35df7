"""``probe http3`` and ``probe throughput``: step lines and the verdict on stdout, JSON, exit codes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from probe.cli import main
from probe.lab.quicserver import QuicServer
from tests.nettests.test_http3 import pem_of, route
from tests.nettests.test_throughput import media_server
from tests.servers.http_server import HTTPServer, http_server


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, re.sub(r"\s+\d+ ms", "", out), err


@pytest.fixture(scope="module")
def site(ca: trustme.CA) -> Iterator[HTTPServer]:
    with http_server(ca.issue_cert("127.0.0.1")) as server:
        yield server


def test_http3_prints_both_paths_and_the_verdict(
    capsys: pytest.CaptureFixture[str], ca: trustme.CA, ca_file: Path, site: HTTPServer
) -> None:
    url = f"https://127.0.0.1:{site.port}/"
    with QuicServer(pem_of(ca.issue_cert("127.0.0.1")), route=route, port=site.port):
        status, out, _ = run(capsys, "http3", url, "--ca-file", str(ca_file), "--allow-loopback")
    assert status == 0
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0].startswith(f"{url}  (")
    assert [line.split()[0] for line in lines[1:-1]] == ["tcp", "tls", "http", "quic", "http"]
    assert lines[4] == f"quic 127.0.0.1:{site.port} sni=127.0.0.1  → TLSv1.3 h3"
    assert lines[5].startswith(f"http GET {url} via 127.0.0.1:{site.port}  → 200 (")
    assert (
        lines[-1] == "verdict: blocking=false accessible=true dns_consistency=null mechanism=ok → reachable"
    )


def test_http3_json_and_a_silent_udp_port(
    capsys: pytest.CaptureFixture[str], ca_file: Path, site: HTTPServer
) -> None:
    url = f"https://127.0.0.1:{site.port}/"
    status, out, _ = run(
        capsys, "http3", url, "--ca-file", str(ca_file), "--allow-loopback", "--timeout", "1", "--json"
    )
    doc = json.loads(out)
    assert (status, doc["test_name"], doc["test_keys"]["quic_handshakes"][0]["failure"]) == (
        0,
        "http3",
        "connection_refused",
    )


def test_http3_needs_an_https_url(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "http3", "http://example.com/")
    assert (status, out) == (2, "")
    assert err == "probe: error: http://example.com/: HTTP/3 needs an https:// URL\n"


def test_throughput_prints_speeds_ratio_and_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    with media_server(shaped=True) as slow, media_server(shaped=False) as fast:
        media, reference = f"http://127.0.0.1:{slow}/m.bin", f"http://127.0.0.1:{fast}/r.bin"
        status, out, _ = run(
            capsys, "throughput", media, "--reference", reference, "--control", "none", "--max-seconds", "1",
            "--max-bytes", "262144", "--allow-loopback",
        )  # fmt: skip
    assert status == 0
    lines = [line.strip() for line in out.splitlines()]
    assert [line.split()[0] for line in lines[1:5]] == ["tcp", "tcp", "http", "http"]
    assert re.fullmatch(r"speed: \d+ kbit/s \(\d+ B/s\)", lines[5])
    assert re.fullmatch(r"reference: \d+ kbit/s \(\d+ B/s\), ratio [0-9.]+(e-\d+)?", lines[6])
    assert lines[-1] == (
        "verdict: blocking=http-diff accessible=false dns_consistency=null mechanism=http.throttle "
        "→ blocked (anomaly)"
    )


def test_throughput_refuses_a_bad_reference(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "throughput", "https://example.com/x", "--reference", "ftp://x/")
    assert status == 2
    assert err.startswith("probe: error: Invalid value for --reference: expected an http(s):// URL")


def test_http3_without_url_measures_the_listed_sites_as_known_http3(
    capsys: pytest.CaptureFixture[str], ca_file: Path, site: HTTPServer, tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{site.port}/"
    listed = tmp_path / "endpoints.toml"
    listed.write_text(f'[[http3]]\nrole = "site"\nurl = "{url}"\n')
    args = (
        "http3",
        "--endpoints",
        str(listed),
        "--ca-file",
        str(ca_file),
        "--allow-loopback",
        "--timeout",
        "1",
    )
    status, out, _ = run(capsys, *args, "--json")
    (doc,) = [json.loads(line) for line in out.splitlines()]
    # Nothing serves UDP there: listed, the refused QUIC handshake beside working TLS is blocking.
    assert (status, doc["input"], doc["test_keys"]["x_mechanism"], doc["test_keys"]["x_blocking"]) == (
        0, url, "quic.refused", "tcp_ip",
    )  # fmt: skip


def test_throughput_without_url_takes_the_listed_media_and_reference(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with media_server(shaped=True) as slow, media_server(shaped=False) as fast:
        listed = tmp_path / "endpoints.toml"
        listed.write_text(
            f'[[throughput]]\nrole = "media"\nurl = "http://127.0.0.1:{slow}/m.bin"\n\n'
            f'[[throughput]]\nrole = "reference"\nurl = "http://127.0.0.1:{fast}/r.bin"\n'
        )
        args = ("throughput", "--endpoints", str(listed), "--max-seconds", "1", "--allow-loopback", "--json")
        status, out, _ = run(capsys, *args, "--max-bytes", "262144")
    (doc,) = [json.loads(line) for line in out.splitlines()]
    keys = doc["test_keys"]
    assert (status, doc["input"], keys["x_reference"]["url"]) == (
        0, f"http://127.0.0.1:{slow}/m.bin", f"http://127.0.0.1:{fast}/r.bin",
    )  # fmt: skip
    assert (keys["x_throttled"], keys["x_mechanism"]) == (True, "http.throttle")


def test_throughput_needs_a_url_or_a_list(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "throughput")
    assert status == 2
    assert "give URL, or --endpoints with a [[throughput]] list" in err
