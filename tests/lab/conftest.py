"""Lab tests: real namespaces, iptables and servers. Root-only; skipped with a reason otherwise."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.lab.plan import NAMESPACE_RE
from probe.lab.runner import Report, run_scenario
from probe.lab.scenario import load_scenario


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, iptables): run as root, as CI does"
    missing = [tool for tool in ("ip", "iptables-restore", "tc") if shutil.which(tool) is None]
    if missing:
        return f"lab tests need {', '.join(missing)}: apt-get install iproute2 iptables"
    if importlib.util.find_spec("trustme") is None:
        return "lab tests need trustme: pip install -e '.[dev]'"
    return None


@pytest.fixture(autouse=True)
def _skip_without_lab(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("lab") is not None:
        reason = lab_unavailable()
        if reason:
            pytest.skip(reason)


def lab_namespaces() -> set[str]:
    """Every lab namespace on this machine (any run)."""
    names = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout.split()
    return {name for name in names if NAMESPACE_RE.fullmatch(name)}


@pytest.fixture
def no_new_namespaces() -> Iterator[None]:
    """Fail the test if it leaves a lab namespace behind (other runs' namespaces are ignored)."""
    before = lab_namespaces()
    yield
    leaked = lab_namespaces() - before
    assert not leaked, f"leaked namespaces: {sorted(leaked)}"


_REPORTS: dict[Path, Report] = {}


def scenario_report(path: Path) -> Report:
    """The report of the scenario file at *path*, run once per test session.

    ``test_scenarios.py`` checks each report against its expectations; ``tests/test_oonidata.py``
    feeds the same measurements to OONI's data library, without building every lab twice.
    """
    report = _REPORTS.get(path)
    if report is None:
        report = _REPORTS[path] = run_scenario(load_scenario(path))
    return report
