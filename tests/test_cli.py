"""The ``probe`` command group: every command resolves, and each loads only what it needs."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from probe.cli import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_resolves_to_itself(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command)
    assert command.name == name


def test_the_daemon_loads_neither_the_helper_server_nor_the_lab_nor_scapy() -> None:
    # (probe.helper.wire, the control's wire format, is the client's too.)
    heavy = (
        "starlette",
        "uvicorn",
        "hypercorn",
        "scapy",
        "probe.lab",
        "probe.raw",
        "probe.helper.app",
        "probe.helper.server",
    )
    script = (
        "import sys\n"
        "from probe.cli import main\n"
        "assert main(['daemon', '--help']) == 0\n"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"
