"""Streaming export of stored measurements: CSV for spreadsheets, JSONL for OONI tooling.

Both write one row at a time as the store streams them (:func:`csv_rows`,
:meth:`~measurements.store.Store.iter_measurements`), so memory stays flat whatever the size
of the store; :func:`export` is the one call ``probe export`` needs. Neither format can
contain the volunteer's IP address: the store has no column for it, and the stored JSON
carries OONI's ``127.0.0.1`` marker.

CSV (excel dialect, ``\\r\\n`` line ends; open the file with ``newline=""``): a header row,
then one row per measurement with the summary columns of :class:`MeasurementRow` — never the
JSON body. ``NULL`` is an empty cell, booleans are ``true``/``false``, ``measured_at`` is
OONI's UTC ``YYYY-MM-DD hh:mm:ss``. A text cell that a spreadsheet would run as a formula
(first character ``=``, ``+``, ``-``, ``@``, tab or carriage return) gets a leading ``'``,
as OWASP advises against CSV injection: URLs and labels come from test lists and servers
that the operator does not control.

JSONL: each stored measurement's OONI JSON on its own line, byte for byte as stored.
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import closing
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import String, case
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from measurements.schema import AnySelect, MeasurementRecord, MeasurementRow, measurement_query

if TYPE_CHECKING:
    from measurements.store import Store

CSV_COLUMNS: tuple[str, ...] = MeasurementRow._fields[:-1]
"""The CSV header: every :class:`MeasurementRow` field but ``body``."""


class Writable(Protocol):
    """Where an export goes: any text stream (a file opened with ``newline=""``, ``sys.stdout``)."""

    def write(self, text: str, /) -> object: ...


_FORMULA_START = frozenset("=+-@\t\r")
_TEXT_CELLS = tuple(
    i for i, name in enumerate(CSV_COLUMNS) if name not in ("measured_at", "runtime_s", "round_id")
)
"""Positions of the cells that hold text (or NULL) and so may need :func:`safe_cell`."""


def safe_cell(text: str) -> str:
    """*text*, with a leading ``'`` if a spreadsheet would read it as a formula."""
    return "'" + text if text[:1] in _FORMULA_START else text


class OoniTime(FunctionElement[str]):
    """SQL for a stored UTC time as OONI's ``YYYY-MM-DD hh:mm:ss`` text, on each backend."""

    type = String()
    inherit_cache = True


@compiles(OoniTime)
def _ooni_time(element: OoniTime, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps SQLAlchemy's ISO text ("YYYY-MM-DD hh:mm:ss.ffffff"): its first 19 characters.
    return f"substr(CAST({compiler.process(element.clauses, **kw)} AS VARCHAR), 1, 19)"


@compiles(OoniTime, "postgresql")
def _ooni_time_pg(element: OoniTime, compiler: SQLCompiler, **kw: Any) -> str:
    # Not CAST to text: that follows the server's DateStyle, which an operator may have changed.
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM-DD HH24:MI:SS')"


def csv_query(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    asn: str | int | None = None,
) -> AnySelect:
    """:func:`~measurements.schema.measurement_query` with its cells as the CSV writes them.

    ``measured_at`` becomes OONI's ``YYYY-MM-DD hh:mm:ss`` (:class:`OoniTime`) and
    ``accessible`` ``true`` / ``false`` / NULL in SQL, so that the only Python work per row is
    the spreadsheet-safety check: the datetime round trip alone would cost more than the
    rest of the export.
    """
    m = MeasurementRecord
    typed = measurement_query(since=since, until=until, target=target, asn=asn)
    text = {
        "measured_at": OoniTime(m.measured_at),
        "accessible": case((m.accessible.is_(True), "true"), (m.accessible.is_(False), "false")),
    }
    columns = [text[c.name].label(c.name) if c.name in text else c for c in typed.selected_columns]
    return typed.with_only_columns(*columns[:-1], maintain_column_froms=True)  # all but the body


def csv_rows(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    asn: str | int | None = None,
) -> Generator[Sequence[Any], None, None]:
    """Stream the CSV cells of the matching measurements, in :data:`CSV_COLUMNS` order.

    Raises:
        StorageError: the store cannot be read (also while iterating).
        ValueError: *asn* is not an ASN.
    """
    return store.stream(csv_query(since=since, until=until, target=target, asn=asn))


def export_csv(rows: Iterable[Sequence[Any]], out: Writable) -> int:
    """Write a header row and *rows* to *out* as CSV (excel dialect), spreadsheet-safe.

    Args:
        rows: cells in :data:`CSV_COLUMNS` order, e.g. ``csv_rows(store, since=...)``;
            ``None`` is written as an empty cell.
        out: a text stream opened with ``newline=""``.

    Returns:
        The number of rows written.

    Raises:
        StorageError: reading *rows* from the store failed part-way.
        OSError: *out* cannot be written.
    """
    writer = csv.writer(out, dialect="excel")
    writer.writerow(CSV_COLUMNS)
    tally = [0]
    writer.writerows(_spreadsheet_safe(rows, tally))
    return tally[0]


def _spreadsheet_safe(rows: Iterable[Sequence[Any]], tally: list[int]) -> Iterator[Sequence[Any]]:
    """*rows* with :func:`safe_cell` applied to their text cells; counts them into ``tally[0]``."""
    formula, text = _FORMULA_START, _TEXT_CELLS
    n = 0
    for row in rows:  # the export's hot path (bench/store.py): a row is copied only when unsafe
        n += 1
        for i in text:
            value = row[i]
            if value and value[:1] in formula:
                row = [safe_cell(v) if isinstance(v, str) else v for v in row]
                break
        yield row
    tally[0] = n


def export_jsonl(rows: Iterable[MeasurementRow], out: Writable) -> int:
    """Write each row's stored OONI JSON to *out*, one measurement per line.

    Args:
        rows: measurements read with ``with_body=True``.
        out: a text stream.

    Returns:
        The number of measurements written.

    Raises:
        ValueError: a row was read without its body.
        StorageError: reading *rows* from the store failed part-way.
        OSError: *out* cannot be written.
    """
    n = 0
    write = out.write
    for n, row in enumerate(rows, start=1):  # noqa: B007 (n is the count afterwards)
        if row.body is None:
            raise ValueError("export_jsonl needs rows read with with_body=True")
        write(row.body)
        write("\n")
    return n


def export(
    store: Store,
    out: Writable,
    *,
    format: Literal["csv", "jsonl"],
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    asn: str | int | None = None,
) -> int:
    """Export the measurements of *store* matching the filters to *out*: what ``probe export`` runs.

    Returns:
        The number of measurements written.

    Raises:
        StorageError: the store cannot be read.
        ValueError: *format* is unknown or *asn* is not an ASN.
        OSError: *out* cannot be written.
    """
    if format == "csv":
        with closing(csv_rows(store, since=since, until=until, target=target, asn=asn)) as cells:
            return export_csv(cells, out)
    if format == "jsonl":
        rows = store.iter_measurements(since=since, until=until, target=target, asn=asn, with_body=True)
        with closing(rows):  # on an error in *out*, release the database cursor now, not at GC
            return export_jsonl(rows, out)
    raise ValueError(f"unknown export format {format!r} (csv or jsonl)")
