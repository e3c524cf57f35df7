"""Target lists in the citizenlab test-lists CSV format, or plain lists of URLs.

Columns: ``url,category_code,category_description,date_added,source,notes`` — existing lists
(e.g. citizenlab's ``lists/pk.csv``) load as they are, with or without a UTF-8 byte order
mark; every column is kept (stored with the target and exported). A row with fewer fields
than the header is fine (the missing ones are empty). :func:`load_input_file` also takes a
plain list of URLs, one a line (what ``probe run --input-file`` reads).

One URL, one target: the scheme and host are lower-cased and an internationalised host name
is written in its IDNA A-label (punycode) form, so ``https://Ürdü.example/`` and
``https://xn--rd-via2b.example/`` are the same target (:func:`canonical_url`). The A-label
is what the probe resolves and what cannot be confused with a look-alike name.

A bad row names itself, ``file:line: problem``: text that is not UTF-8 or holds a NUL,
malformed quoting, a field longer than :data:`MAX_FIELD` characters, more fields than the
header, a bad URL. Strict (``problems=None``, ``probe run --check``): the first one is a
:class:`~probe.errors.ConfigError`. Lenient (a *problems* list, ``probe run`` and the
daemon): the row is skipped and its problem appended. A file that cannot be read or has no
``url`` header is an error either way: there is no row to skip to.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from probe.errors import ConfigError, TargetError
from probe.rounds.roundstore import TargetInfo
from probe.steps import urls

COLUMNS = ("url", "category_code", "category_description", "date_added", "source", "notes")
MAX_FIELD = csv.field_size_limit()
"""The longest field accepted: the csv module's limit (131,072 characters unless changed)."""


Target = TargetInfo
"""One URL to measure, with its test-list metadata: the record the store keeps for it too
(:class:`~probe.rounds.roundstore.TargetInfo`, defined beside the store's interface, which
the data side may import)."""


def canonical_url(url: str) -> str:
    """*url* as the one spelling of its target: scheme and host lower case, the host in IDNA A-labels.

    The port, path, query and fragment are kept as written.

    Raises:
        TargetError: *url* is not an http(s) URL with a valid host.
    """
    scheme, host, _ = urls.split_url(url)
    parts = urlsplit(url)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if "@" in parts.netloc:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def load_targets(path: Path | Traversable, *, problems: list[str] | None = None) -> list[Target]:
    """Read one test list.

    Args:
        path: the CSV file.
        problems: where to append the problem of each bad row, which is then skipped;
            ``None``: the first bad row raises.

    Raises:
        ConfigError: the file cannot be read or is not a CSV test list; or, without
            *problems*, a row is malformed or has a bad URL (``file:line: problem``).
    """
    text, bad_lines = _read(path, strict=problems is None)
    return _parse(path, text, bad_lines, problems)


def load_input_file(path: Path, *, problems: list[str] | None = None) -> list[Target]:
    """Read ``--input-file``: a citizenlab CSV (a header naming ``url``) or URLs one a line.

    In a plain list, blank lines and lines starting with ``#`` are skipped.

    Raises:
        ConfigError: as :func:`load_targets`.
    """
    text, bad_lines = _read(path, strict=problems is None)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "url" in (cell.strip() for cell in first.split(",")):
        return _parse(path, text, bad_lines, problems)
    targets: list[Target] = []
    for number, line in enumerate(io.StringIO(text, newline=None), start=1):
        url = line.strip()
        if number in bad_lines:
            _problem(f"{path}:{number}: {bad_lines[number]}", problems)
        elif url and not url.startswith("#"):
            target = _target({"url": url}, where=f"{path}:{number}", n_columns=1, problems=problems)
            if target is not None:
                targets.append(target)
    return targets


def _parse(
    path: Path | Traversable, text: str, bad_lines: dict[int, str], problems: list[str] | None
) -> list[Target]:
    targets: list[Target] = []
    # Universal newlines: \r\n, and the \r of old Mac files, end a line as \n does (strict
    # mode would call a lone \r malformed); strict: a stray quote is an error, not a guess.
    # csv.reader, not DictReader: a blank line is a record of its own, so each record's
    # lines are known (DictReader skips blank lines silently).
    reader = csv.reader(io.StringIO(text, newline=None), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ConfigError(f"{path}:1: {_csv_problem(exc)}") from None
    if 1 in bad_lines:
        raise ConfigError(f"{path}:1: {bad_lines[1]}")
    if header is None:
        raise ConfigError(f"{path}:1: empty file: a test list starts with a header naming a 'url' column")
    if "url" not in header:
        raise ConfigError(f"{path}:1: not a test list: the header needs a 'url' column (citizenlab format)")
    last = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # The bad record begins after the last one read (line_num is where the error was seen).
            _problem(f"{path}:{last + 1}: {_csv_problem(exc)}", problems)
            last = reader.line_num
            continue
        first, last = last + 1, reader.line_num
        bad = next((n for n in range(first, last + 1) if n in bad_lines), None)
        if bad is not None:
            _problem(f"{path}:{bad}: {bad_lines[bad]}", problems)
            continue
        if not record:
            continue
        row: dict[str | None, Any] = dict(zip(header, record, strict=False))
        if len(record) > len(header):
            row[None] = record[len(header) :]
        target = _target(row, where=f"{path}:{last}", n_columns=len(header), problems=problems)
        if target is not None:
            targets.append(target)
    return targets


def _problem(message: str, problems: list[str] | None) -> None:
    if problems is None:
        raise ConfigError(message)
    problems.append(message)


def _read(path: Path | Traversable, *, strict: bool) -> tuple[str, dict[int, str]]:
    """The text of *path*, and the lines (numbered from 1) that had a bad byte or a NUL.

    Those lines are read as empty. Strict: the first one is a :class:`ConfigError` instead.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read target list: {exc.strerror or type(exc).__name__}") from None
    try:
        text = data.decode("utf-8-sig")
        if "\0" not in text:  # the csv module would take it, and PostgreSQL refuses it in text
            return text, {}
    except UnicodeDecodeError:
        pass
    # bytes.splitlines ends lines at \n, \r\n and \r only: the lines the reader counts.
    lines, bad = [], {}
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(keepends=True), start=1):
        body = raw.rstrip(b"\r\n")
        try:
            line = body.decode("utf-8")
            problem = "a NUL character: not a text file" if "\0" in line else None
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
        if problem is not None:
            if strict:
                raise ConfigError(f"{path}:{number}: {problem}")
            bad[number], line = problem, ""
        lines.append(line + raw[len(body) :].decode("ascii"))
    return "".join(lines), bad


def _target(
    row: dict[str | None, Any], *, where: str, n_columns: int, problems: list[str] | None
) -> Target | None:
    extra = row.get(None) or []  # the fields beyond the header's (DictReader's key for them)
    if any(str(value).strip() for value in extra):  # empty ones (a trailing comma) lose nothing
        _problem(f"{where}: {n_columns + len(extra)} fields, but the header names {n_columns}", problems)
        return None
    url = (row.get("url") or "").strip()
    if not url:
        _problem(f"{where}: empty url", problems)
        return None
    try:
        url = canonical_url(url)
    except TargetError as exc:
        _problem(f"{where}: {exc}", problems)
        return None
    return Target(url=url, **{k: (row.get(k) or "").strip() for k in COLUMNS[1:]})


def _csv_problem(exc: csv.Error) -> str:
    message = str(exc)
    if message.startswith("field larger than field limit"):
        return f"a field is longer than {MAX_FIELD} characters"
    return f"malformed CSV: {message}"


def load_many(paths: Iterable[Path | Traversable], *, problems: list[str] | None = None) -> list[Target]:
    """Read several lists; a URL listed twice is measured once (first list wins).

    *problems*: as :func:`load_targets`.
    """
    return dedupe(target for path in paths for target in load_targets(path, problems=problems))


def dedupe(targets: Iterable[Target]) -> list[Target]:
    """*targets* with each URL once (the first one wins), in order."""
    seen: dict[str, Target] = {}
    for target in targets:
        seen.setdefault(target.url, target)
    return list(seen.values())
