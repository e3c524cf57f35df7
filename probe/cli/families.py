"""``probe families``: what a round runs besides the web list, what each test sends, and the budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from probe.cli.options import config_option


@click.command()
@config_option("its [tests] section")
@click.option("--json", "as_json", is_flag=True, help="Print the families as one JSON object.")
def families(config_file: Path | None, as_json: bool) -> None:
    """List the tests beyond websites: on or off, what each sends, its bytes a round, the month's budget."""
    from probe.nettests.registry import FAMILIES
    from probe.rounds.families import DataBudget, default_usage_path
    from probe.rounds.settings import load_settings

    tests = load_settings(config_file).tests
    budget = DataBudget(default_usage_path(), tests.monthly_budget_bytes)
    rows: list[dict[str, Any]] = [
        {
            "family": f.name,
            "on": bool(getattr(tests, f.name)),
            "installed": f.available(),
            "heavy": f.heavy,
            "bytes_per_round": tests.throughput_round_bytes if f.heavy else f.bytes_estimate,
            "sends": f.sends,
        }
        for f in FAMILIES.values()
    ]
    used, limit = budget.used(), tests.monthly_budget_bytes
    if as_json:
        answer = {"families": rows, "month_bytes_used": used, "monthly_budget_bytes": limit,
                  "excluded_categories": list(tests.excluded_categories)}  # fmt: skip
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo("web (always on): every URL of the target lists, DNS, TCP, TLS and one HTTP GET each")
    for row in rows:
        state = "on " if row["on"] else "off"
        missing = "" if row["installed"] else " (not installed)"
        size = _size(int(row["bytes_per_round"]))
        click.echo(f"{row['family']:<18} {state} ~{size}/round{missing}: {row['sends']}")
    if tests.excluded_categories:
        click.echo(f"excluded categories: {', '.join(tests.excluded_categories)}")
    spent = "no budget set" if limit is None else f"of {_size(limit)}"
    click.echo(
        f"this month (UTC): {_size(used)} used {spent}; once spent, the heavy families wait for next month"
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
