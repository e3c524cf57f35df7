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


COMMANDS: dict[str, tuple[str, str]] = {
    "measure": (
        "probe.cli.measure:measure",
        "Measure URL: DNS, TCP, TLS and HTTP, step by step, then compare with the control.",
    ),
    "run": ("probe.cli.rounds:run", "Measure every configured target once and store the round."),
    "daemon": (
        "probe.cli.daemon:daemon",
        "Measure every configured target on a schedule until stopped (SIGTERM or Ctrl-C: exit 0).",
    ),
    "status": (
        "probe.cli.status:status",
        "Show the last rounds, the next scheduled run, the database size and the failing targets.",
    ),
    "list": (
        "probe.cli.list:list_rounds",
        "List the stored rounds, newest first: id, status, times, counts and network.",
    ),
    "show": (
        "probe.cli.show:show",
        "Show one stored measurement step by step, with its outcome (ID: its measurement_uid or a prefix).",
    ),
    "export": (
        "probe.cli.export:export_command",
        "Export stored measurements (CSV: summary columns; JSONL: one OONI measurement per line).",
    ),
    "flags": (
        "probe.cli.flags:flags",
        "List blocking onsets and ends, and the events they form (recomputed from the stored rounds).",
    ),
    "report": (
        "probe.cli.report:report",
        "Write the dashboard's views as one self-contained HTML file (no script, no network).",
    ),
    "dashboard": (
        "probe.cli.dashboard:dashboard",
        "Serve a read-only web dashboard of the stored measurements (loopback only unless --public).",
    ),
    "upload": (
        "probe.cli.upload:upload",
        "Send stored measurements to the configured collector; keep what it cannot take for later.",
    ),
    "helper": (
        "probe.cli.helper:helper",
        "The control vantage (test helper) that probes compare their view with.",
    ),
    "collector": (
        "probe.cli.collector:collector",
        "The collector many probes upload to (OONI's collector protocol), storing into one database.",
    ),
    "lab": ("probe.cli.lab:lab", "The simulated censored network (network namespaces; needs root)."),
    "tor": (
        "probe.cli.tor:tor",
        "Reach Tor's directory authorities and listed bridges: TLS to OR ports, consensus from dir ports.",
    ),
    "vpn": (
        "probe.cli.vpn:vpn",
        "Send a WireGuard handshake initiation or OpenVPN's hard reset to each endpoint of --endpoints.",
    ),
    "sni-blocking": (
        "probe.cli.sni_blocking:sni_blocking",
        "Handshake with each TARGET name and a decoy name at one address: SNI filtering or IP blocking?",
    ),
    "forensics": (
        "probe.cli.forensics:forensics",
        "Send a TLS ClientHello for URL's host and capture who resets it, then localise the censor.",
    ),
    "telegram": (
        "probe.cli.messaging:telegram",
        "Test Telegram: its data centres (HTTP POST) and web.telegram.org (HTTPS).",
    ),
    "whatsapp": (
        "probe.cli.messaging:whatsapp",
        "Test WhatsApp: its endpoints (TCP 443, 5222), the registration service and WhatsApp web (HTTPS).",
    ),
    "signal": (
        "probe.cli.messaging:signal",
        "Test Signal: its backends over HTTPS, with Signal's own roots.",
    ),
    "facebook-messenger": (
        "probe.cli.messaging:facebook_messenger",
        "Test Facebook Messenger: its services' DNS answers (Facebook's AS?) and TCP port 443.",
    ),
    "http3": (
        "probe.cli.http3:http3",
        "Measure URL over HTTP/3 (QUIC handshake and GET, UDP 443) beside TLS over TCP to the same address.",
    ),
    "families": (
        "probe.cli.families:families",
        "List the tests beyond websites: on or off, what each sends, its bytes a round, the month's budget.",
    ),
    "throughput": (
        "probe.cli.throughput:throughput",
        "Time a bounded download of URL and compare its speed with a reference host's and the control's.",
    ),
}
"""Every command: ``(module:attribute, summary)``. A command's module is loaded only when that
command runs or shows its own help, never to list them all (``probe --help`` prints the
summaries from here; a test keeps them equal to the commands' docstrings). Command modules
import the store, the network steps and rich inside their functions, so ``probe CMD --help``
loads click and little else, and the daemon, a long-lived guest on the volunteer's machine,
carries no more than it needs."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name][0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        # A bare Command carrying the summary truncates it exactly as the real one would.
        summaries = {name: click.Command(name, help=COMMANDS[name][1]) for name in names}
        rows = [(name, summary.get_short_help_str(limit)) for name, summary in summaries.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
def cli() -> None:
    """reachprobe: measure whether websites can be reached, and how they are blocked."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probe`` console script; returns the exit status.

    0: the command did its work (a measurement ran, whatever it found). 2: bad input — a
    flag, a URL, a settings file or target list, a database URL — with one line on stderr
    naming the file, line or field; nothing is stored. 3: the environment — the database or
    the data directory cannot be opened or written (a full disk, a read-only file, a server
    down): :class:`~probe.errors.StorageError`; the same command works once that is fixed
    (``probe daemon`` does not exit for it: it retries every round). 130: interrupted.
    """
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
