"""``probe lab``: list the scenarios, run one in a simulated censored network, clean up leftovers.

Exit status of ``probe lab run``: 0 when every target matched its expectation, 1 on any
mismatch, 2 on bad input (unknown or invalid scenario, not root, tool missing).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from probe.lab.censor import KINDS
from probe.lab.outcome import render
from probe.lab.runner import DEFAULT_CONCURRENCY, Report, TargetResult, run_scenario
from probe.lab.scenario import Expected, find_scenario, load_scenario, scenario_paths
from probe.lab.topology import destroy, down_all, install_signal_handlers, require_tools

EXIT_MISMATCH = 1


@click.group()
def lab() -> None:
    """The simulated censored network (network namespaces; needs root)."""


@lab.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the scenarios as JSON.")
@click.option("--kinds", is_flag=True, help="List the censorship kinds instead.")
def list_(as_json: bool, kinds: bool) -> None:
    """List the shipped scenarios (name and description)."""
    if kinds:
        rows = [{"name": name, "description": kind.doc} for name, kind in KINDS.items()]
    else:
        rows = []
        for path in scenario_paths():
            scenario = load_scenario(path)
            rows.append({"name": scenario.name, "description": scenario.description})
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        click.echo(f"{row['name']:<{width}}  {row['description']}")


@lab.command("run")
@click.argument("scenario")
@click.option("--json", "as_json", is_flag=True, help="Print the report (with every measurement) as JSON.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Targets measured at once.",
)
@click.pass_context
def run(ctx: click.Context, scenario: str, as_json: bool, concurrency: int) -> None:
    """Run SCENARIO (a name from `probe lab list`, or a .toml path) and compare with its expectations."""
    loaded = load_scenario(find_scenario(scenario))
    require_tools()
    install_signal_handlers()
    report = run_scenario(loaded, concurrency=concurrency, progress=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        # Piped output is read later, in a file or a CI log: do not wrap it to 80 columns.
        render_report(report, Console(highlight=False, width=None if sys.stdout.isatty() else 150))
    timings = ", ".join(f"{key.removesuffix('_s')} {value:.2f} s" for key, value in report.timings.items())
    setup = report.timings.get("topology_up_s", 0.0) + report.timings.get("topology_down_s", 0.0)
    click.echo(f"timings: {timings} (topology setup+teardown {setup:.2f} s)", err=True)
    if not report.ok:
        ctx.exit(EXIT_MISMATCH)


@lab.command("down")
@click.option("--all", "everything", is_flag=True, help="Remove every lab run on this machine.")
@click.argument("prefixes", nargs=-1)
def down(everything: bool, prefixes: tuple[str, ...]) -> None:
    """Remove leftovers of lab runs (namespaces, processes, /etc/netns files) by PREFIX or --all."""
    if not everything and not prefixes:
        raise click.UsageError("give a run PREFIX (rpXXXXXX) or --all")
    require_tools()
    if everything:
        removed = down_all()
    else:
        for prefix in prefixes:
            try:
                destroy(prefix)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="PREFIX") from None
        removed = list(prefixes)
    click.echo(f"removed {len(removed)} lab run(s){': ' + ' '.join(removed) if removed else ''}", err=True)


def render_report(report: Report, console: Console) -> None:
    """The expected-vs-observed table, one row per target."""
    scenario = report.scenario
    table = Table(
        title=f"{scenario.name} ({report.plan.prefix}): {scenario.description}", title_justify="left"
    )
    table.add_column("target", overflow="fold")
    table.add_column("expected")
    table.add_column("observed")
    table.add_column("", justify="center")
    for result in report.results:
        expected, observed = _cells(result)
        mark = "[green]ok[/]" if result.ok else "[bold red]MISMATCH[/]"
        table.add_row(escape(result.url), expected, observed, mark)
    console.print(table)
    if scenario.censorship:
        console.print("censorship: " + escape(", ".join(entry.describe() for entry in scenario.censorship)))
    bad = sum(not result.ok for result in report.results)
    summary = "[green]all targets as expected[/]" if not bad else f"[bold red]{bad} target(s) differ[/]"
    console.print(f"{summary} ({len(report.results)} measured)")


def _cells(result: TargetResult) -> tuple[str, str]:
    """The expected and observed cells: ``step failure`` first, then the other expected keys."""
    if result.observed.get("step") == "error":
        return _lines(result.expected), "\n".join(f"[red]{escape(problem)}[/]" for problem in result.problems)
    wrong = frozenset(problem.split(":", 1)[0] for problem in result.problems)
    observed = {key: result.observed.get(key) for key in result.expected}
    return _lines(result.expected), _lines(observed, wrong)


def _lines(values: Mapping[str, Expected], wrong: frozenset[str] = frozenset()) -> str:
    def paint(keys: set[str], text: str) -> str:
        return f"[red]{escape(text)}[/]" if keys & wrong else escape(text)

    step = str(values.get("step"))
    failure = values.get("failure")
    lines = [
        paint(
            {"step", "failure"}, step if failure is None and step == "none" else f"{step} {render(failure)}"
        )
    ]
    lines += [
        paint({key}, f"{key} {render(value)}")
        for key, value in values.items()
        if key not in ("step", "failure")
    ]
    return "\n".join(lines)
