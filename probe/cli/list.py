"""``probe list``: the stored rounds, newest first — id, status, times, counts and network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.options import config_option, database_url, db_option

# The store and rich load when the command runs, not for ``--help``.
if TYPE_CHECKING:
    from measurements.store.rows import RoundInfo

DEFAULT_LIMIT = 20


@click.command(name="list")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="How many rounds, newest first.",
)
@db_option
@config_option("for storage.database_url")
@click.option("--json", "as_json", is_flag=True, help="Print the rounds as one JSON object.")
def list_rounds(limit: int, db_url: str | None, config_file: Path | None, as_json: bool) -> None:
    """List the stored rounds, newest first: id, status, times, counts and network."""
    from probe.cli.status import open_existing_store

    with open_existing_store(database_url(db_url, config_file)) as store:
        rounds = store.last_rounds(limit)
        name = store.name
    if as_json:
        click.echo(
            json.dumps({"database": name, "rounds": [round_dict(r) for r in rounds]}, ensure_ascii=False)
        )
        return
    _print_table(rounds, name)


def round_dict(r: RoundInfo) -> dict[str, Any]:
    """One round as ``--json`` shows it (times ISO 8601 UTC with ``Z``)."""
    from probe.isotime import iso_utc

    return {
        "id": r.id,
        "status": r.status,
        "started_at": iso_utc(r.started_at),
        "ended_at": iso_utc(r.ended_at),
        "n_targets": r.n_targets,
        "n_measurements": r.n_measurements,
        "n_failed": r.n_failed,
        "n_errors": r.n_errors,
        "probe_asn": r.probe_asn,
        "probe_cc": r.probe_cc,
        "network_up": r.network_up,
        "control_reachable": r.control_reachable,
        "software_version": r.software_version,
    }


def _print_table(rounds: list[RoundInfo], database: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from probe.isotime import iso_utc

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    if not rounds:
        console.print(f"no rounds stored in {escape(database)}")
        return
    table = Table(box=None, pad_edge=False)
    for header in (
        "round",
        "status",
        "started",
        "ended",
        "targets",
        "measured",
        "failed",
        "errors",
        "network",
    ):
        table.add_column(
            header,
            justify="right" if header in ("round", "targets", "measured", "failed", "errors") else "left",
        )
    for r in rounds:
        up = {True: "", False: "  [bold red]network down[/]", None: ""}[r.network_up]
        table.add_row(
            str(r.id),
            r.status,
            iso_utc(r.started_at),
            iso_utc(r.ended_at) or "",
            str(r.n_targets),
            str(r.n_measurements),
            str(r.n_failed),
            str(r.n_errors),
            f"{escape(r.probe_asn)} {escape(r.probe_cc)}{up}",
        )
    console.print(table)
