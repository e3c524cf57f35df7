"""``probe helper serve`` and ``probe measure --control``: input validation (exit 2, one line)."""

from __future__ import annotations

import pytest

from probe.cli import main
from probe.cli.helper import parse_listen
from probe.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)), ("0.0.0.0:443", ("0.0.0.0", 443))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "localhost:80", "1.2.3.4:99999", "1.2.3.4:", "[::1]"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--listen"):
        parse_listen(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["helper", "serve", "--listen", "nowhere"], "--listen nowhere: expected HOST:PORT"),
        (
            ["helper", "serve", "--listen", "127.0.0.1:0", "--allow", "10.0.0.0/33"],
            "--allow: invalid network",
        ),
        (["helper", "serve", "--listen", "127.0.0.1:0", "--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        (["measure", "http://x.test/", "--control", "ftp://th/"], "expected an http(s):// URL or 'none'"),
    ],
)
def test_bad_input_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("probe: error: ") and message in err
    assert err.count("\n") == 1
