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
    from collections.abc import Callable

    from probe.rounds import runner, service, targets
    from probe.rounds.settings import Settings

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
    "--input",
    "inputs",
    multiple=True,
    metavar="URL",
    help="Measure URL instead of the settings' target lists. Repeatable.",
)
@click.option(
    "--input-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Measure the URLs of FILE (a citizenlab CSV, or one URL a line) instead of the target lists.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Check the settings and target lists, print a summary, measure nothing (exit 2 on any problem).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the round as one JSON object instead of a table."
)
def run(
    once: bool,
    config_file: Path | None,
    db_url: str | None,
    inputs: tuple[str, ...],
    input_file: Path | None,
    check: bool,
    as_json: bool,
) -> None:
    """Measure every configured target once and store the round.

    A bad row of a target list is skipped with a warning naming its file and line; --check
    reports every one and fails instead. Exit status 2 for bad settings, a bad --input, or
    nothing left to measure (nothing is stored), 3 when the database cannot be opened or
    written (a full disk, a read-only file).
    """
    from probe.rounds import service
    from probe.rounds.settings import load_settings

    settings = load_settings(config_file)
    if check:
        _check(settings, inputs, input_file, as_json=as_json)
        return
    targets = _inputs(inputs, input_file, warn=_warn) if inputs or input_file else None
    plan = service.plan_round(settings, targets=targets, warn=_warn)
    from measurements.store.store import open_store

    with open_store(db_url or settings.storage.database_url) as store:
        # Rounds this installation left running when killed (cron users have no daemon to
        # clean up); a round the daemon or another `probe run` is measuring is never touched.
        store.mark_interrupted()
        report, summaries = _run_with_progress(plan, store, show=not as_json)
    rows = [_row(summary, network_up=report.network_up) for summary in summaries]
    if as_json:
        from probe.isotime import iso_utc

        document = {
            "round_id": report.round_id,
            "database": store.name,
            "started_at": iso_utc(report.started_at),
            "ended_at": iso_utc(report.ended_at),
            "network_up": report.network_up,
            "results": rows,
            "families": {
                "ran": list(report.beyond.ran),
                "skipped": [{"family": name, "why": why} for name, why in report.beyond.skipped],
                "n_measurements": report.beyond.n_measurements,
                "bytes_used": report.beyond.bytes_used,
            },
        }
        click.echo(json.dumps(document, ensure_ascii=False))
    else:
        _print_table(rows, report, store.name)


def _warn(problem: str) -> None:
    click.echo(f"probe: warning: {problem} (row skipped)", err=True)


def _inputs(
    inputs: tuple[str, ...], input_file: Path | None, *, warn: Callable[[str], None] | None
) -> list[targets.Target]:
    """The targets of ``--input`` and ``--input-file``; *warn* ``None``: a bad row is an error.

    Raises:
        click.BadParameter: an --input is not an http(s) URL.
        ConfigError: --input-file cannot be read, or (*warn* ``None``) has a bad row.
    """
    from probe.errors import TargetError
    from probe.rounds.targets import Target, canonical_url, load_input_file

    found: list[Target] = []
    for url in inputs:
        try:
            found.append(Target(canonical_url(url.strip())))
        except TargetError as exc:
            raise click.BadParameter(str(exc), param_hint="--input") from None
    if input_file is not None:
        problems: list[str] | None = None if warn is None else []
        found += load_input_file(input_file, problems=problems)
        for problem in problems or ():
            assert warn is not None
            warn(problem)
    return found


def _check(settings: Settings, inputs: tuple[str, ...], input_file: Path | None, *, as_json: bool) -> None:
    """``--check``: every problem of the settings and lists on stderr, a summary on stdout.

    Raises:
        click.exceptions.Exit: status 2 when there was any problem.
    """
    from probe.errors import ConfigError
    from probe.rounds import service
    from probe.rounds.targets import dedupe, load_targets

    problems: list[str] = []
    lists: list[dict[str, Any]] = []
    lists_given = bool(inputs or input_file)
    if lists_given:
        found = _inputs(inputs, input_file, warn=problems.append)
        lists.append({"list": str(input_file) if input_file else "--input", "targets": len(found)})
    else:
        found = []
        try:
            paths = settings.target_list_paths()
        except ConfigError as exc:
            problems.append(str(exc))
            paths = []
        for path in paths:
            try:
                listed = load_targets(path, problems=problems)
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            lists.append({"list": str(path), "targets": len(listed)})
            found += listed
    try:
        service.measure_config(settings)  # resolvers, ASN database, fingerprints
    except ConfigError as exc:
        problems.append(str(exc))
    n_targets = len(dedupe(found))
    if not n_targets and not problems:
        where = f"{settings.source}: targets.lists: " if settings.source and not lists_given else ""
        problems.append(f"{where}the target lists contain no URL")
    if as_json:
        summary = {"settings": str(settings.source) if settings.source else None, "lists": lists,
                   "targets": n_targets, "problems": problems}  # fmt: skip
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        click.echo(f"settings: {settings.source or 'built-in defaults'}")
        for entry in lists:
            click.echo(f"list: {entry['list']}: {entry['targets']} targets")
        noun = "target" if n_targets == 1 else "targets"
        click.echo(
            f"{n_targets} {noun} to measure, {len(problems)} problem{'s' if len(problems) != 1 else ''}"
        )
    for problem in problems:
        click.echo(f"probe: error: {problem}", err=True)
    if problems:
        raise click.exceptions.Exit(2)


def _run_with_progress(
    plan: service.RoundPlan, store: Any, *, show: bool
) -> tuple[service.RoundReport, list[dict[str, Any]]]:
    """Run the round with a progress bar; return its report and a summary per target, in
    target-list order (the summary, not the measurement, is what the table keeps)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from probe.rounds import service

    place = {target.url: i for i, target in enumerate(plan.targets)}
    summaries: list[dict[str, Any] | None] = [None] * len(plan.targets)
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
            summaries[place[result.target.url]] = _summary(result)
            progress.update(task, advance=1, description=escape(result.target.url))

        report = asyncio.run(service.run_round(plan, store, on_result=advance))
    return report, [s for s in summaries if s is not None]


def _summary(result: runner.Result) -> dict[str, Any]:
    """The summary columns of one target's result (its outcome waits for the round's heartbeat)."""
    from measurements.store.summary import summary_columns

    m = result.measurement
    if m is None:
        return {"url": result.target.url, "error": result.error}
    columns = summary_columns(m)
    del columns["input"], columns["probe_asn"], columns["probe_cc"], columns["dns_consistency"]
    return {"url": result.target.url, **columns}


def _row(summary: dict[str, Any], *, network_up: bool | None) -> dict[str, Any]:
    """The summary of one target: its outcome, the verdict keys and the first failure of each step."""
    from measurements.store.summary import outcome_column
    from probe.isotime import iso_utc

    if "error" in summary:
        return summary
    return {
        "url": summary["url"],
        "measurement_uid": summary["measurement_uid"],
        "measured_at": iso_utc(summary["measured_at"]),
        "outcome": outcome_column(summary, network_up=network_up).value,
        "blocking": summary["blocking"],
        "accessible": summary["accessible"],
        "mechanism": summary["mechanism"],
        "confirmed": summary["confirmed"],
        **{name: summary[name] for name in FAILURE_COLUMNS},
        "control_failure": summary["control_failure"],
        "runtime_s": summary["runtime_s"],
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
    done = report.beyond
    if done.ran or done.skipped:
        ran = ", ".join(done.ran) or "none"
        console.print(
            f"tests beyond websites: {escape(ran)} ({done.n_measurements} measurements, "
            f"{done.bytes_used / 1e6:.1f} MB; `probe list` / `probe show` / `probe dashboard` show them)"
        )
        for name, why in done.skipped:
            console.print(f"  {escape(name)} not measured: {escape(why)}")


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


OUTCOME_STYLES: dict[str, str] = {
    "blocked.confirmed": "bold red",
    "blocked.anomaly": "bold red",
    "shutdown": "bold red",
    "reachable": "green",
    "down": "yellow",
    "server.refusal": "yellow",
}
"""How the table colours an outcome; the no-verdict ones are dim."""


def _verdict(row: dict[str, Any]) -> str:
    """What a person reads: :func:`probe.outcome.describe` of the stored outcome."""
    from rich.markup import escape

    from probe.outcome import Outcome, describe

    outcome = Outcome(row["outcome"])
    style = OUTCOME_STYLES.get(outcome.value, "dim")
    return f"[{style}]{escape(describe(outcome, confirmed=row['confirmed']))}[/]"
