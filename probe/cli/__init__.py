"""The ``probe`` command: thin shells that validate input and call one function each.

Data goes to stdout, messages to stderr. Bad input (URL, flag, file) ends with one line on
stderr naming the problem and exit status 2; a measurement that ran exits 0 whatever it found.
rich is imported only inside this package.
"""

from __future__ import annotations

import sys

import click

from probe import __version__
from probe.errors import ProbeError

EXIT_BAD_INPUT = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
def cli() -> None:
    """reachprobe: measure whether websites can be reached, and how they are blocked."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probe`` console script; returns the exit status."""
    _register_commands()
    try:
        result = cli.main(args=argv, prog_name="probe", standalone_mode=False)
    except ProbeError as exc:
        click.echo(f"probe: error: {exc}", err=True)
        return EXIT_BAD_INPUT
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


def _register_commands() -> None:
    from probe.cli import daemon, export, flags, forensics, helper, lab, measure, report, rounds, status

    for command in (
        measure.measure,
        rounds.run,
        daemon.daemon,
        status.status,
        export.export_command,
        flags.flags,
        report.report,
        helper.helper,
        lab.lab,
        forensics.forensics,
    ):
        cli.add_command(command)


def run() -> None:  # pragma: no cover - the console script
    sys.exit(main())
