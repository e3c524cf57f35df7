"""The README's offline tour (``contrib/offline/try.sh``) runs every everyday command on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_offline_tour_runs_every_command_on_loopback() -> None:
    env = {**os.environ, "PROBE": str(Path(sys.executable).parent / "probe")}
    run = subprocess.run(
        ["bash", str(ROOT / "contrib" / "offline" / "try.sh")],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    for command in ("measure", "run --once", "status", "export --format csv", "flags", "report"):
        assert f"/probe {command}" in run.stderr
    assert "offline tour complete" in run.stderr
    assert "verdict: blocking=false accessible=true" in run.stdout
    assert "exported 2 measurements to stdout" in run.stderr
