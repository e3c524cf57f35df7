"""The ``probe`` command: thin shells that validate input and call one function each.

Data goes to stdout, messages to stderr. Bad input (URL, flag, file) ends with one line on
stderr naming the problem and exit status 2; a measurement that ran exits 0 whatever it found.
rich is imported only inside this package.
"""

from __future__ import annotations

import importlib
import sys

import click

from probe import __version__
from probe.errors import ProbeError

EXIT_BAD_INPUT = 2


COMMANDS = {
    "measure": "probe.cli.measure:measure",
    "run": "probe.cli.rounds:run",
    "daemon": "probe.cli.daemon:daemon",
    "status": "probe.cli.status:status",
    "export": "probe.cli.export:export_command",
    "flags": "probe.cli.flags:flags",
    "report": "probe.cli.report:report",
    "helper": "probe.cli.helper:helper",
    "lab": "probe.cli.lab:lab",
    "forensics": "probe.cli.forensics:forensics",
}
"""Every command, as ``module:attribute``: a command's module (and what it imports: the
helper's web server, the lab, scapy) is loaded only when that command runs, or when ``--help``
lists them all. The daemon, a long-lived guest on the volunteer's machine, carries no more
than it needs."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
def cli() -> None:
    """reachprobe: measure whether websites can be reached, and how they are blocked."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probe`` console script; returns the exit status."""
    try:
        result = cli.main(args=argv, prog_name="probe", standalone_mode=False)
    except ProbeError as exc:
        click.echo(f"probe: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        # One line, not click's usage block: scripts and people both read it at a glance.
        click.echo(f"probe: error: {' '.join(exc.format_message().split())}", err=True)
        return EXIT_BAD_INPUT if exc.exit_code in (1, 2) else exc.exit_code
    except click.exceptions.Abort:
        click.echo("probe: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def run() -> None:  # pragma: no cover - the console script
    sys.exit(main())
