"""Target lists in the citizenlab test-lists CSV format.

Columns: ``url,category_code,category_description,date_added,source,notes`` — existing lists
(e.g. citizenlab's ``lists/pk.csv``) load as they are. A bad row stops the load with a
one-line :class:`~probe.errors.ConfigError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from probe import http
from probe.errors import ConfigError, TargetError

COLUMNS = ("url", "category_code", "category_description", "date_added", "source", "notes")


@dataclass(frozen=True, slots=True)
class Target:
    """One URL to measure, with its test-list metadata."""

    url: str
    category_code: str = ""
    category_description: str = ""
    date_added: str = ""
    source: str = ""
    notes: str = ""


def load_targets(path: Path | Traversable) -> list[Target]:
    """Read one test list.

    Raises:
        ConfigError: the file cannot be read, lacks the ``url`` column, or a row has a bad URL.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read target list: {_reason(exc)}") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "url" not in reader.fieldnames:
        raise ConfigError(f"{path}:1: not a test list: the header needs a 'url' column (citizenlab format)")
    targets: list[Target] = []
    for row in reader:
        line = reader.line_num
        url = (row.get("url") or "").strip()
        if not url:
            raise ConfigError(f"{path}:{line}: empty url")
        try:
            http.split_url(url)
        except TargetError as exc:
            raise ConfigError(f"{path}:{line}: {exc}") from None
        targets.append(Target(url=url, **{k: (row.get(k) or "").strip() for k in COLUMNS[1:]}))
    return targets


def load_many(paths: Iterable[Path | Traversable]) -> list[Target]:
    """Read several lists; a URL listed twice is measured once (first list wins)."""
    seen: dict[str, Target] = {}
    for path in paths:
        for target in load_targets(path):
            seen.setdefault(target.url, target)
    return list(seen.values())


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return exc.strerror or type(exc).__name__
