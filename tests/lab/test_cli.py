"""``probe lab`` commands that need no privileges: listing, bad input, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from probe.cli import main
from probe.lab.censor import KINDS
from probe.lab.scenario import scenario_paths


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(scenario_paths())
    assert any(line.startswith("pk-x-sni-reset-2024 ") and "SNI" in line for line in lines)


def test_list_json_and_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} == {path.stem for path in scenario_paths()}
    assert main(["lab", "list", "--kinds", "--json"]) == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == list(KINDS)


def test_run_unknown_scenario_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "run", "no-such-scenario"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("probe: error: no-such-scenario: unknown scenario (known: ")
    assert err.count("\n") == 1


def test_run_invalid_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "broken"\ndescription = "x"\n[[targets]]\nurl = "https://x.com/"\nstep = "dns"\n')
    assert main(["lab", "run", str(path)]) == 2
    assert (
        capsys.readouterr().err
        == f"probe: error: {path}:targets[0].failure: required when step = 'dns' (\"null\" for none)\n"
    )


def test_down_needs_a_prefix_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "down"]) == 2
    assert "give a run PREFIX" in capsys.readouterr().err


def test_python_dash_m_probe_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "probe.cli", "lab", "list"], capture_output=True, text=True)
    assert done.returncode == 0 and "baseline" in done.stdout
