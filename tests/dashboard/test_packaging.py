"""The wheel ships the dashboard's templates and stylesheet (pyproject's package-data matches every one)."""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "measurements" / "views" / "dashboard"


def test_every_template_and_stylesheet_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["measurements.views.dashboard"]
    shipped = (p for p in PACKAGE.rglob("*") if p.suffix in (".html", ".css"))
    files = sorted(p.relative_to(PACKAGE).as_posix() for p in shipped)
    assert len(files) == 18  # 17 templates and the stylesheet
    assert [f for f in files if not any(PurePosixPath(f).match(p) for p in patterns)] == []
