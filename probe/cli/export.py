"""``probe export``: stored measurements as CSV or JSONL, streamed, filtered by time, target, network.

Times are ISO 8601 dates or date-times (UTC unless an offset is given) or ages before now
(``7d``), as :mod:`probe.cli.params` describes. ``--since`` is inclusive, ``--until``
exclusive. ``-o FILE`` is written atomically: the data goes to a temporary file beside it,
renamed over FILE only once the export is complete, so a failure (full disk, database error)
leaves FILE as it was and no partial file behind.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

import click

from probe.cli.options import config_option, database_url, db_option
from probe.cli.params import Asn, When
from probe.cli.status import open_existing_store


@click.command(name="export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), required=True, help="Output format.")
@click.option(
    "--since",
    type=When(),
    help="Only measurements from then on: 2024-01-20, 2024-01-20T14:00 (UTC), or 7d ago.",
)
@click.option("--until", type=When(), help="Only measurements before then (same forms).")
@click.option("--target", metavar="URL", help="Only this exact target URL.")
@click.option("--asn", type=Asn(), help="Only this network (AS1234 or 1234).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write to FILE (atomically) instead of stdout.",
)
@db_option
@config_option("for storage.database_url")
def export_command(
    fmt: Literal["csv", "jsonl"],
    since: datetime | None,
    until: datetime | None,
    target: str | None,
    asn: str | None,
    output: Path | None,
    db_url: str | None,
    config_file: Path | None,
) -> None:
    """Export stored measurements (CSV: summary columns; JSONL: one OONI measurement per line)."""
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since/--until")
    from measurements.store.export import export

    db_url = database_url(db_url, config_file)
    run = functools.partial(export, format=fmt, since=since, until=until, target=target, asn=asn)
    with open_existing_store(db_url) as store:
        if output is None or str(output) == "-":
            try:
                n = run(store, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:  # `probe export | head`: the reader had enough
                _silence_stdout()
                return
            where = "stdout"
        else:
            with atomic_output(output) as out:
                n = run(store, out)
            where = str(output)
    click.echo(f"exported {n} measurement{'s' if n != 1 else ''} to {where}", err=True)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[str]]:
    """A text file (``newline=""``) that replaces *path* only if the block completes.

    Raises:
        click.ClickException: the file cannot be created or written (one line naming it).
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot write: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would have made it, not mkstemp's 0600
        with open(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        raise click.ClickException(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _silence_stdout() -> None:
    # Python would report the broken pipe again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
