"""``probe telegram|whatsapp|signal|facebook-messenger``: output, --json, --endpoints, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from click.testing import CliRunner

from probe.cli import cli, main
from tests.nettests.loopback import LOCAL, Loopback, loopback
from tests.servers.http_server import http_server
from tests.servers.tcp_server import closed_port


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Loopback]:
    with loopback(tmp_path, {"web.telegram.org": LOCAL}) as lab:
        yield lab


def _args(lab: Loopback, endpoints: Path) -> list[str]:
    return [
        "--endpoints", str(endpoints), "--resolver", lab.resolver.address, "--ca-file", str(lab.ca_file),
        "--allow-loopback", "--timeout", "1",
    ]  # fmt: skip


def _telegram_list(lab: Loopback, dc_port: int, web_port: int) -> Path:
    path = lab.directory / "telegram.toml"
    path.write_text(
        f'[[telegram]]\nrole = "datacenter"\nhost = "127.0.0.1"\nports = [{dc_port}]\n\n'
        f'[[telegram]]\nrole = "web"\nurl = "https://web.telegram.org:{web_port}/"\n'
    )
    return path


def test_probe_telegram_prints_each_step_the_keys_and_the_verdict(world: Loopback) -> None:
    with ExitStack() as stack:
        web = stack.enter_context(http_server(world.cert("web.telegram.org")))
        dc = closed_port()
        result = CliRunner().invoke(cli, ["telegram", *_args(world, _telegram_list(world, dc, web.port))])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("telegram  (") and lines[0].endswith(" s, AS0 ZZ)")
    steps = [line.split("→")[0].split() for line in lines[1:] if "→" in line]
    assert [s[0] for s in steps] == ["dns", "dns", "tcp", "tcp", "tls", "http"]
    assert f"127.0.0.1:{dc}  → ✗ connection_refused" in result.output
    assert "  telegram_tcp_blocking = true" in lines
    assert '  telegram_web_status = "ok"' in lines
    assert (
        lines[-1] == 'verdict: blocking="tcp_ip" accessible=false mechanism="tcp.refused" — blocked (anomaly)'
    )


def test_probe_telegram_json_is_the_ooni_measurement(world: Loopback) -> None:
    with ExitStack() as stack:
        web = stack.enter_context(http_server(world.cert("web.telegram.org")))
        dc = stack.enter_context(http_server())
        path = _telegram_list(world, dc.port, web.port)
        result = CliRunner().invoke(cli, ["telegram", "--json", *_args(world, path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert (doc["test_name"], doc["probe_ip"], doc["input"]) == ("telegram", "127.0.0.1", None)
    keys = doc["test_keys"]
    assert (keys["telegram_tcp_blocking"], keys["telegram_http_blocking"], keys["x_mechanism"]) == (
        False,
        False,
        "ok",
    )


@pytest.mark.parametrize(
    ("command", "content", "message"),
    [
        ("telegram", '[[signal]]\nrole = "backend"\nhost = "a.example"\n', "{path}: no [[telegram]] entries"),
        (
            "whatsapp",
            '[[whatsapp]]\nrole = "web"\nhost = "a..b"\n',
            "{path}:1: whatsapp[0].host: invalid host name",
        ),
        ("signal", "[[signal]\n", "{path}: invalid TOML"),
        (
            "facebook-messenger",
            '[[facebook_messenger]]\nrole = "stun"\nhost = "stun.example"\n',
            '{path}: no facebook_messenger endpoint with role "service"',
        ),
    ],
)
def test_a_bad_endpoint_list_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, content: str, message: str
) -> None:
    path = tmp_path / "list.toml"
    path.write_text(content)
    assert main([command, "--endpoints", str(path)]) == 2
    err = capsys.readouterr().err
    assert message.format(path=path) in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_resolver_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["signal", "--resolver", "udp://nowhere"]) == 2
    assert "invalid resolver 'udp://nowhere'" in capsys.readouterr().err
