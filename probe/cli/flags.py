"""``probe flags``: recompute the blocking flags over the stored rounds, and list them.

Detection runs over everything stored (it is fast and idempotent: the same rounds give the
same flags) and replaces the stored flags and events; the listing is then filtered.
Sentences (or ``--json``) go to stdout, the summary line to stderr.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from probe.cli.options import config_option, database_url, db_option
from probe.cli.params import Asn, When

if TYPE_CHECKING:  # the store and the patterns load when the command runs, not for --help
    from measurements.patterns.findings import Detection

since_option = click.option(
    "--since",
    type=When(),
    help="Only flags with evidence from then on: 2024-02-17, 2024-02-17T09:00 (UTC), or 36h, 7d, 2w ago.",
)


def compute(db_url: str | None, config_file: Path | None) -> Detection:
    """Open the store, recompute and store the flags, and return what was found.

    Raises:
        ConfigError: the settings file is invalid.
        StorageError: the database cannot be opened, read or written.
    """
    from measurements.patterns.detect import update_flags
    from measurements.store.store import open_store

    with open_store(database_url(db_url, config_file)) as store:
        return update_flags(store)


@click.command()
@since_option
@click.option("--target", metavar="URL", help="Only this target (exact URL).")
@click.option("--asn", type=Asn(), help="Only this network: AS17557 or 17557.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the flags and events.")
@db_option
@config_option("for storage.database_url")
def flags(
    since: datetime | None,
    target: str | None,
    asn: str | None,
    as_json: bool,
    db_url: str | None,
    config_file: Path | None,
) -> None:
    """List blocking onsets and ends, and the events they form (recomputed from the stored rounds)."""
    from measurements.patterns.wording import event_dict, event_sentence, flag_dict, flag_sentence

    found = compute(db_url, config_file)
    shown = [
        f
        for f in found.flags
        if (since is None or f.last_evidence_at >= since)
        and (target is None or f.target == target)
        and (asn is None or f.probe_asn == asn)
    ]
    wanted = {f.event for f in shown}
    events = [
        (i, e)
        for i, e in enumerate(found.events)
        if i in wanted
        or (
            e.kind == "shutdown"
            and target is None
            and (asn is None or asn in e.asns)
            and (since is None or e.ended_at is None or e.ended_at >= since)
        )
    ]
    if as_json:
        document = {"flags": [flag_dict(f) for f in shown], "events": [event_dict(e, i) for i, e in events]}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    for _, e in events:
        click.echo(f"event: {event_sentence(e)}")
    for f in shown:
        click.echo(flag_sentence(f))
    click.echo(
        f"{len(shown)} flags and {len(events)} events shown; {len(found.flags)} flags over "
        f"{found.n_measurements} measurements in {found.n_rounds} rounds",
        err=True,
    )
