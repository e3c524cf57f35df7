"""Target lists in the citizenlab test-lists CSV format.

Columns: ``url,category_code,category_description,date_added,source,notes`` — existing lists
(e.g. citizenlab's ``lists/pk.csv``) load as they are, with or without a UTF-8 byte order
mark. A bad file or row stops the load with a one-line :class:`~probe.errors.ConfigError`
naming the file and line: text that is not UTF-8 or holds a NUL, malformed quoting, a field
longer than :data:`MAX_FIELD` characters, a row with more fields than the header, a bad URL.
A row with fewer fields than the header is fine (the missing ones are empty).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from probe import http
from probe.errors import ConfigError, TargetError

COLUMNS = ("url", "category_code", "category_description", "date_added", "source", "notes")
MAX_FIELD = csv.field_size_limit()
"""The longest field accepted: the csv module's limit (131,072 characters unless changed)."""


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
        ConfigError: the file cannot be read or is not a CSV test list, or a row is malformed
            or has a bad URL (``file:line: problem``).
    """
    targets: list[Target] = []
    text = _read(path)
    # Universal newlines: \r\n, and the \r of old Mac files, end a line as \n does (strict
    # mode would call a lone \r malformed); strict: a stray quote is an error, not a guess.
    reader = csv.DictReader(io.StringIO(text, newline=None), strict=True)
    try:
        if reader.fieldnames is None:
            raise ConfigError(f"{path}:1: empty file: a test list starts with a header naming a 'url' column")
        if "url" not in reader.fieldnames:
            raise ConfigError(
                f"{path}:1: not a test list: the header needs a 'url' column (citizenlab format)"
            )
        for row in reader:
            targets.append(_target(row, where=f"{path}:{reader.line_num}", n_columns=len(reader.fieldnames)))
    except csv.Error as exc:
        # line_num still counts the last good record: the bad one begins on the next line.
        raise ConfigError(f"{path}:{reader.line_num + 1}: {_csv_problem(exc)}") from None
    return targets


def _read(path: Path | Traversable) -> str:
    """The text of *path*, or a :class:`ConfigError` naming the line of the first bad byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read target list: {exc.strerror or type(exc).__name__}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = _line_of(data[: exc.start].decode("utf-8", "replace"))
        raise ConfigError(f"{path}:{line}: not UTF-8 text") from None
    nul = text.find("\0")
    if nul >= 0:  # the csv module would take it, and PostgreSQL refuses it in text
        line = _line_of(text[:nul])
        raise ConfigError(f"{path}:{line}: a NUL character: not a text file")
    return text


def _line_of(before: str) -> int:
    """The line number of the character after *before*, counting lines as the reader does."""
    return before.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1


def _target(row: dict[str | Any, str | Any], *, where: str, n_columns: int) -> Target:
    extra = row.get(None) or []  # DictReader's key for the fields beyond the header's
    if any(str(value).strip() for value in extra):  # empty ones (a trailing comma) lose nothing
        raise ConfigError(f"{where}: {n_columns + len(extra)} fields, but the header names {n_columns}")
    url = (row.get("url") or "").strip()
    if not url:
        raise ConfigError(f"{where}: empty url")
    try:
        http.split_url(url)
    except TargetError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return Target(url=url, **{k: (row.get(k) or "").strip() for k in COLUMNS[1:]})


def _csv_problem(exc: csv.Error) -> str:
    message = str(exc)
    if message.startswith("field larger than field limit"):
        return f"a field is longer than {MAX_FIELD} characters"
    return f"malformed CSV: {message}"


def load_many(paths: Iterable[Path | Traversable]) -> list[Target]:
    """Read several lists; a URL listed twice is measured once (first list wins)."""
    seen: dict[str, Target] = {}
    for path in paths:
        for target in load_targets(path):
            seen.setdefault(target.url, target)
    return list(seen.values())
