"""The environment the tests run in is the one ``requirements.lock`` pins (``make lock``).

A fresh clone must test what we tested: every dependency ``pyproject.toml`` names is pinned,
and every pinned package that applies to this platform is installed at exactly its version.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
BUILD_ONLY = frozenset({"setuptools", "wheel"})
"""Pinned for pip's isolated build of reachprobe (Makefile ``PIP_CONSTRAINT``), not installed."""


def _pins() -> dict[str, tuple[str, Marker | None]]:
    pins: dict[str, tuple[str, Marker | None]] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        pins[canonicalize_name(requirement.name)] = (specifier.version, requirement.marker)
    return pins


def test_every_declared_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    declared = [*project["dependencies"], *(d for extra in extras for d in extra)]
    pins = _pins()
    missing = [d for d in declared if canonicalize_name(Requirement(d).name) not in pins]
    assert not missing, f"not in requirements.lock (run `make lock`): {missing}"
    wrong = [
        f"{d} (locked {pins[canonicalize_name(Requirement(d).name)][0]})"
        for d in declared
        if pins[canonicalize_name(Requirement(d).name)][0] not in Requirement(d).specifier
    ]
    assert not wrong, f"lock outside the declared range (run `make lock`): {wrong}"


def test_installed_versions_are_the_locked_ones() -> None:
    mismatched = {}
    for name, (version, marker) in _pins().items():
        if name in BUILD_ONLY or (marker is not None and not marker.evaluate()):
            continue
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            mismatched[name] = (version, installed)
    assert not mismatched, f"(locked, installed): {mismatched}"
