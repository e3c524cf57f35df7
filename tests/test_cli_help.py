"""Help answers at once: printing it loads click and the command's options, not the machinery.

Timing is a benchmark (``bench/help.py``); what is tested here is the cause of a slow help, an
import of the store, the network steps or the helper's server, in a fresh interpreter.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click
import click.testing
import pytest

from probe.cli import COMMANDS, cli

HEAVY = ("sqlalchemy", "httpx", "httpcore", "dns", "pydantic", "apscheduler", "alembic", "uvicorn",
         "hypercorn", "starlette", "scapy", "trustme", "cryptography", "measurements.store.store")

_PROBE = """
import json, sys
from probe.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy)), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], *([name, "--help"] for name in sorted(COMMANDS))], ids=" ".join)
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    code = _PROBE.format(argv=argv, heavy=HEAVY)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Usage: probe" in run.stdout, run.stderr
    loaded = json.loads(run.stderr.strip().splitlines()[-1])
    assert loaded == [], f"`probe {' '.join(argv)}` imported {loaded}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listed_summary_is_the_commands_own(name: str) -> None:
    module, _, attribute = COMMANDS[name][0].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command)
    assert command.name == name
    assert command.get_short_help_str(limit=1000) == COMMANDS[name][1]


def test_group_help_lists_every_command() -> None:
    listed = click.testing.CliRunner().invoke(cli, ["--help"]).output
    for name in COMMANDS:
        assert f"  {name} " in listed
