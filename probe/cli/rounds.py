"""``probe run``: one round now — every configured target, stored, then a summary table.

(The module is not called ``run``: that name is the console-script function of :mod:`probe.cli`.)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.options import config_option, db_option

# The round's machinery, the store and rich load when the command runs, not for ``--help``.
if TYPE_CHECKING:
    from probe import runner, service

FAILURE_COLUMNS = ("dns_failure", "tcp_failure", "tls_failure", "http_failure")


@click.command()
@click.option(
    "--once",
    is_flag=True,
    default=True,
    help="Run one round and exit (the default; `probe daemon` runs rounds on a schedule).",
)
@config_option("targets, measurement, control, storage")
@db_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print the round as one JSON object instead of a table."
)
def run(once: bool, config_file: Path | None, db_url: str | None, as_json: bool) -> None:
    """Measure every configured target once and store the round.

    Exit status 2 for bad settings or target lists (nothing is stored), 3 when the database
    cannot be opened or written (a full disk, a read-only file).
    """
    from measurements.store import open_store
    from probe import service
    from probe.settings import load_settings

    settings = load_settings(config_file)
    plan = service.plan_round(settings)
    with open_store(db_url or settings.storage.database_url) as store:
        # Rounds this installation left running when killed (cron users have no daemon to
        # clean up); a round the daemon or another `probe run` is measuring is never touched.
        store.mark_interrupted()
        report = _run_with_progress(plan, store, show=not as_json)
    rows = [_row(result) for result in report.results]
    if as_json:
        document = {
            "round_id": report.round_id,
            "database": store.name,
            "started_at": report.started_at.isoformat(),
            "ended_at": report.ended_at.isoformat(),
            "results": rows,
        }
        click.echo(json.dumps(document, ensure_ascii=False))
    else:
        _print_table(rows, report, store.name)


def _run_with_progress(plan: service.RoundPlan, store: Any, *, show: bool) -> service.RoundReport:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from probe import service

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]measuring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        disable=not show or not console.is_terminal,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=len(plan.targets))

        def advance(result: runner.Result) -> None:
            progress.update(task, advance=1, description=escape(result.target.url))

        return asyncio.run(service.run_round(plan, store, on_result=advance))


def _row(result: runner.Result) -> dict[str, Any]:
    """The summary of one target: the verdict keys and the first failure of each step."""
    from measurements.summary import summary_columns

    m = result.measurement
    if m is None:
        return {"url": result.target.url, "error": result.error}
    columns = summary_columns(m)
    return {
        "url": result.target.url,
        "measurement_id": m.measurement_uid,
        "blocking": columns["blocking"],
        "accessible": columns["accessible"],
        "mechanism": columns["mechanism"],
        "confirmed": columns["confirmed"],
        **{name: columns[name] for name in FAILURE_COLUMNS},
        "control_failure": columns["control_failure"],
        "runtime_s": columns["runtime_s"],
    }


def _print_table(rows: list[dict[str, Any]], report: service.RoundReport, database: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"round {report.round_id}", title_justify="left")
    for header in ("target", "verdict", "mechanism", "failure", "time"):
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(_cells(row)))
    # Not a terminal (a pipe, a file): no width to fit, so never cut a URL or a failure short.
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=240)
    console.print(table)
    elapsed = (report.ended_at - report.started_at).total_seconds()
    noun = "target" if len(rows) == 1 else "targets"
    console.print(f"{len(rows)} {noun} in {elapsed:.1f} s, stored in {escape(database)}")


def _cells(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    from rich.markup import escape

    url = escape(row["url"])
    if "error" in row:
        return url, "[red]error[/]", "", escape(str(row["error"])), ""
    failure = next((row[name] for name in FAILURE_COLUMNS if row[name]), None)
    return (
        url,
        _verdict(row),
        escape(row["mechanism"] or ""),
        f"[red]{escape(failure)}[/]" if failure else "",
        f"{row['runtime_s']:.1f} s",
    )


def _verdict(row: dict[str, Any]) -> str:
    from rich.markup import escape

    blocking, accessible = row["blocking"], row["accessible"]
    if blocking not in (None, "false"):
        confirmed = f" (confirmed: {escape(row['confirmed'])})" if row["confirmed"] else ""
        return f"[bold red]blocked: {escape(blocking)}[/]{confirmed}"
    if row["mechanism"] == "control.unreachable":
        # Nothing decided for want of a control. OONI's rules can still say accessible=true
        # here (a failed DNS lookup, rule 5.1a): data fidelity, not a reading.
        return "[dim]no verdict (no control)[/]"
    if accessible is True:
        return "[green]accessible[/]"
    if accessible is False:
        return "[yellow]down[/]"
    return "[dim]no verdict[/]"
