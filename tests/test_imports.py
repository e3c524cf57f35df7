"""Arrows go one way between the network side (``probe``) and the data side (``measurements``).

The data side reads probe's pure data modules — the model, its serialisation, the outcome
and mechanism vocabularies, the error tree, and the interfaces it implements for the round and
the uploader — and nothing else of ``probe``. The round code writes through its interface
(:class:`probe.rounds.roundstore.RoundStore`), the uploader reads and records its state through
its own (:class:`probe.uploadstate.UploadLedger`), and neither imports ``measurements``: only
the composition roots, the CLI and the daemon beside it, open the real store and hand it in.
Every import is read from the source (``ast``), those inside functions and ``TYPE_CHECKING``
blocks too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PURE_PROBE_MODULES = frozenset(
    {
        "probe.errors",  # the error tree (StorageError is the store's to raise)
        "probe.model",  # the measurement: frozen dataclasses, no logic
        "probe.serialize",  # its one serialisation (the OONI JSON the store keeps)
        "probe.outcome",  # the outcome vocabulary for people and its one derivation
        "probe.mechanism",  # the closed mechanism vocabulary (patterns group flags by its layers)
        "probe.rounds.roundstore",  # the interface the store implements, and what crosses it
        "probe.isotime",  # the one ISO 8601 Z time format people and machines read
        "probe.uploadstate",  # the uploader's ledger interface the store implements, and what crosses it
    }
)
"""What ``measurements`` may import from ``probe``."""

MAY_IMPORT_MEASUREMENTS = ("probe/cli/", "probe/rounds/jobs.py")
"""The composition roots: they open the store and hand it to the round (the daemon's jobs do,
in processes of their own)."""


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import in *path*; ``from a import b`` yields ``a.b`` and ``a``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            assert node.module is not None
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _probe_module(module: str) -> str:
    """The module of ``probe`` an import names: ``probe.model.Measurement`` → ``probe.model``."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        name = ".".join(parts[:n])
        base = ROOT.joinpath(*parts[:n])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return name
    return module  # ``from probe import __version__``: the package itself


def test_the_round_code_never_imports_measurements() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _modules("probe")
        if not str(path.relative_to(ROOT)).startswith(MAY_IMPORT_MEASUREMENTS)
        for line, module in _imported(path)
        if _within(module, "measurements")
    ]
    assert offenders == []


def test_measurements_reads_only_probes_pure_data_modules() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _modules("measurements")
        for line, module in _imported(path)
        if _within(module, "probe") and _probe_module(module) not in PURE_PROBE_MODULES
    ]
    assert offenders == []


@pytest.mark.parametrize("module", sorted(PURE_PROBE_MODULES))
def test_the_pure_modules_import_only_each_other_from_probe(module: str) -> None:
    """Else importing one would pull the network side into the data side after all."""
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    imported = {_probe_module(name) for _, name in _imported(path) if _within(name, "probe")}
    assert imported <= PURE_PROBE_MODULES | {"probe"}


def test_the_rule_sees_todays_composition_roots() -> None:
    """A guard on the guard: the walk finds the imports it is meant to judge."""
    jobs = {module for _, module in _imported(ROOT / "probe" / "rounds" / "jobs.py")}
    assert any(_within(module, "measurements") for module in jobs)
    assert _probe_module("probe.model.Measurement") == "probe.model"
    assert _probe_module("probe.outcome") == "probe.outcome"
