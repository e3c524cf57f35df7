"""``probe lab``: list the scenarios, run one in a simulated censored network, clean up leftovers.

``probe lab run`` prints one line per target, what a volunteer would read (the outcome,
:mod:`probe.outcome`) and the mechanism behind it; ``--verbose`` shows every expected and
observed key instead.

Exit status of ``probe lab run``: 0 when every target matched its expectation, 1 on any
mismatch, 2 on bad input (unknown or invalid scenario, not root, tool missing).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click
from rich.markup import escape

if TYPE_CHECKING:  # the lab (its scenarios, world, steps) loads when a command runs, not for --help
    from rich.console import Console

    from probe.lab.runner import Report, TargetResult
    from probe.lab.scenario import Expected

EXIT_MISMATCH = 1


def _default_concurrency() -> int:
    from probe.lab.runner import DEFAULT_CONCURRENCY

    return DEFAULT_CONCURRENCY


@click.group()
def lab() -> None:
    """The simulated censored network (network namespaces; needs root)."""


@lab.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the scenarios as JSON.")
@click.option("--kinds", is_flag=True, help="List the censorship kinds instead.")
def list_(as_json: bool, kinds: bool) -> None:
    """List the shipped scenarios (name and description)."""
    from probe.lab.censor import KINDS
    from probe.lab.scenario import load_scenario, scenario_paths

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
    "--verbose", "-v", is_flag=True, help="Show every expected and observed key, not only the verdicts."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=_default_concurrency,
    help="Targets measured at once (default: the lab runner's).",
)
@click.pass_context
def run(ctx: click.Context, scenario: str, as_json: bool, verbose: bool, concurrency: int) -> None:
    """Run SCENARIO (a name from `probe lab list`, or a .toml path) and compare with its expectations."""
    from rich.console import Console

    from probe.lab.runner import run_scenario
    from probe.lab.scenario import find_scenario, load_scenario
    from probe.lab.topology import install_signal_handlers, require_tools

    loaded = load_scenario(find_scenario(scenario))
    require_tools()
    install_signal_handlers()
    report = run_scenario(loaded, concurrency=concurrency, progress=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        # Piped output is read later, in a file or a CI log: do not wrap it to 80 columns.
        console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
        (render_report if verbose else render_summary)(report, console)
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
    from probe.lab.topology import destroy, down_all, require_tools

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


def render_summary(report: Report, console: Console) -> None:
    """One line per target: what a volunteer reads (the outcome), how, and whether it was expected."""
    from rich.table import Table

    scenario = report.scenario
    console.print(f"[bold]{escape(scenario.name)}[/] ({report.plan.prefix}): {escape(scenario.description)}")
    if scenario.censorship:
        console.print("censorship: " + escape(", ".join(entry.describe() for entry in scenario.censorship)))
    table = Table(box=None, pad_edge=False)
    table.add_column("target", overflow="fold")
    table.add_column("verdict")
    table.add_column("how")
    table.add_column("")
    for result in report.results:
        table.add_row(escape(result.url), *_verdict(result), _mark(result))
    console.print(table)
    _footer(report, console, hint=" (probe lab run --verbose shows what differs)")


def _verdict(result: TargetResult) -> tuple[str, str]:
    """The outcome a person reads and the mechanism behind it."""
    from probe.outcome import Outcome, describe

    if result.observed.get("step") == "error":
        return "[red]not measured[/]", ""
    value = result.observed.get("outcome")
    if not isinstance(value, str):
        return "", ""
    outcome = Outcome(value)
    confirmed = result.observed.get("confirmed")
    text = describe(outcome, confirmed=confirmed if isinstance(confirmed, str) else None)
    styles = {
        Outcome.BLOCKED_CONFIRMED: "bold red",
        Outcome.BLOCKED_ANOMALY: "red",
        Outcome.SHUTDOWN: "bold red",
        Outcome.REACHABLE: "green",
        Outcome.SERVER_REFUSAL: "yellow",
        Outcome.DOWN: "yellow",
    }
    style = styles.get(outcome, "dim")
    return f"[{style}]{escape(text)}[/]", escape(str(result.observed.get("mechanism") or ""))


def _mark(result: TargetResult) -> str:
    return "[green]as expected[/]" if result.ok else "[bold red]MISMATCH[/]"


def _footer(report: Report, console: Console, *, hint: str = "") -> None:
    bad = sum(not result.ok for result in report.results)
    summary = "[green]all targets as expected[/]" if not bad else f"[bold red]{bad} target(s) differ[/]{hint}"
    console.print(f"{summary} ({len(report.results)} measured)")


def render_report(report: Report, console: Console) -> None:
    """The expected-vs-observed table, one row per target (``--verbose``)."""
    from rich.table import Table

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
    _footer(report, console)


def _cells(result: TargetResult) -> tuple[str, str]:
    """The expected and observed cells: ``step failure`` first, then the other expected keys."""
    if result.observed.get("step") == "error":
        return _lines(result.expected), "\n".join(f"[red]{escape(problem)}[/]" for problem in result.problems)
    wrong = frozenset(problem.split(":", 1)[0] for problem in result.problems)
    observed = {key: result.observed.get(key) for key in result.expected}
    return _lines(result.expected), _lines(observed, wrong)


def _lines(values: Mapping[str, Expected], wrong: frozenset[str] = frozenset()) -> str:
    from probe.lab.outcome import render

    def paint(keys: set[str], text: str) -> str:
        return f"[red]{escape(text)}[/]" if keys & wrong else escape(text)

    step = str(values.get("step"))
    failure = values.get("failure")
    lines = []
    if "step" in values:  # a web target's; a test beyond websites has none
        shown = step if failure is None and step == "none" else f"{step} {render(failure)}"
        lines.append(paint({"step", "failure"}, shown))
    lines += [
        paint({key}, f"{key} {render(value)}")
        for key, value in values.items()
        if key not in ("step", "failure")
    ]
    return "\n".join(lines)
