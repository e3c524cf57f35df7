"""``probe report``: write the dashboard's views as one self-contained HTML file (flags recomputed first)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from probe.cli.flags import compute, since_option
from probe.cli.options import config_option, database_url, db_option
from probe.errors import ConfigError


@click.command()
@since_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="Where to write the page; - for stdout.",
)
@db_option
@config_option("for storage.database_url")
def report(since: datetime | None, output: Path, db_url: str | None, config_file: Path | None) -> None:
    """Write the dashboard's views as one self-contained HTML file (no script, no network)."""
    from measurements.store.store import open_store
    from measurements.views.report import render_report

    found = compute(db_url, config_file)
    with open_store(database_url(db_url, config_file)) as store:
        page = render_report(store, found, generated_at=datetime.now(UTC), since=since)
    if str(output) == "-":
        click.echo(page, nl=False)
        return
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{output}: cannot write the report: {exc.strerror}") from None
    click.echo(f"wrote {output} ({len(found.flags)} flags, {len(found.events)} events)", err=True)
