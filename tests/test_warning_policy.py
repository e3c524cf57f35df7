"""The suite's warning policy (pyproject ``filterwarnings``), run as a user would run pytest.

Warnings attributed to our own packages fail a test; a third-party library's deprecation (the
case that broke fresh clones: cryptography 51 deprecating DSA under dnspython) must not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CASES = """
import warnings

def test_third_party_deprecation():
    warnings.warn_explicit("DSA is deprecated", DeprecationWarning, "dsa.py", 1, module="dns.dnssecalgs.dsa")

def test_third_party_user_warning():
    warnings.warn_explicit("something", UserWarning, "x.py", 1, module="cryptography.utils")

def test_ours_{name}():
    warnings.warn_explicit("deprecated call", DeprecationWarning, "x.py", 1, module="{module}")
"""


@pytest.mark.parametrize("module", ["probe", "probe.steps.http", "measurements.store.store", "tests.test_x"])
def test_own_warnings_fail_and_third_party_ones_do_not(tmp_path: Path, module: str) -> None:
    (tmp_path / "test_policy_case.py").write_text(CASES.format(name=module.replace(".", "_"), module=module))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", "-q", str(tmp_path / "test_policy_case.py")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert run.stdout.splitlines()[-1].startswith("1 failed, 2 passed"), run.stdout
    assert f"FAILED test_policy_case.py::test_ours_{module.replace('.', '_')}" in run.stdout
