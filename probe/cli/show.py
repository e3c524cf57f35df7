"""``probe show ID``: one stored measurement, step by step, with the outcome people read.

ID is a ``measurement_uid`` (as in ``probe run --json``, CSV and JSONL) or a unique prefix of
one. ``--json`` prints the raw OONI JSON exactly as stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.options import config_option, database_url, db_option
from probe.errors import ConfigError

# The store and rich load when the command runs, not for ``--help``.
if TYPE_CHECKING:
    from rich.console import Console

    from measurements.store.rows import MeasurementRow

SHOWN_MATCHES = 5
"""Ids an ambiguous prefix lists in its error."""


@click.command()
@click.argument("uid", metavar="ID")
@db_option
@config_option("for storage.database_url")
@click.option("--json", "as_json", is_flag=True, help="Print the measurement's OONI JSON, as stored.")
def show(uid: str, db_url: str | None, config_file: Path | None, as_json: bool) -> None:
    """Show one stored measurement step by step, with its outcome (ID: its measurement_uid or a prefix).

    Exit status 2 when no measurement, or more than one, has such an id.
    """
    from rich.console import Console

    from probe.cli.status import open_existing_store

    uid = uid.strip()
    if not uid:
        raise click.BadParameter("an empty id", param_hint="ID")
    with open_existing_store(database_url(db_url, config_file)) as store:
        found = store.find_measurements(uid, limit=SHOWN_MATCHES + 1)
        name = store.name
    if not found:
        raise ConfigError(f"{name}: no measurement has the id {uid!r} (`probe export` lists them)")
    if len(found) > 1:
        more = ", …" if len(found) > SHOWN_MATCHES else ""
        ids = ", ".join(r.measurement_uid for r in found[:SHOWN_MATCHES])
        raise ConfigError(f"{uid!r} is the start of several measurement ids ({ids}{more}): give more of it")
    (row,) = found
    assert row.body is not None  # read with its body
    if as_json:
        click.echo(row.body)
        return
    render(row, Console(highlight=False, soft_wrap=True))


def render(row: MeasurementRow, console: Console) -> None:
    """The measurement's steps (as ``probe measure`` prints them), its outcome and OONI's keys."""
    import json

    from rich.markup import escape

    from probe.cli.stepview import ooni_keys, step_lines
    from probe.isotime import iso_utc
    from probe.outcome import Outcome, describe

    doc: dict[str, Any] = json.loads(row.body or "{}")
    keys: dict[str, Any] = doc.get("test_keys") or {}
    network = f"{escape(row.probe_asn)} {escape(row.probe_cc)}"
    console.print(
        f"[bold]{escape(row.input)}[/]  ({row.runtime_s:.2f} s, {network}, {iso_utc(row.measured_at)})"
    )
    console.print(f"[dim]measurement_uid {escape(row.measurement_uid)}  round {row.round_id}[/]")
    for line in step_lines(keys):
        console.print(line)
    outcome = Outcome(row.outcome)
    console.print(f"outcome: [bold]{escape(describe(outcome, confirmed=row.confirmed))}[/]")
    console.print(f"OONI keys: {escape(ooni_keys(keys, mechanism=row.mechanism, confirmed=row.confirmed))}")
