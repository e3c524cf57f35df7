"""Streaming export of stored measurements: CSV for spreadsheets, JSONL for OONI tooling.

Both write as the store streams the rows (:func:`csv_rows`, :func:`measurement_rows`),
holding a batch at most, so memory stays flat whatever the size of the store; :func:`export`
is the one call ``probe export`` needs. Neither format can contain the volunteer's IP
address: the store has no column for it, and the stored JSON carries OONI's ``127.0.0.1``
marker.

CSV (excel dialect, ``\\r\\n`` line ends; open the file with ``newline=""``): a header row,
then one row per measurement with the summary columns of :class:`MeasurementRow` — never the
JSON body: the id (``measurement_uid``, as in JSONL and ``--json``), the target's test-list
metadata, the ``outcome`` people read (:class:`probe.outcome.Outcome`'s value) beside OONI's
verdict keys. ``NULL`` is an empty cell, booleans are ``true``/``false``, times are ISO 8601
UTC with ``Z`` (``2024-02-17T09:00:00Z``, :func:`probe.isotime.iso_utc`'s text). A text cell
that a spreadsheet would run as a formula (first character ``=``, ``+``, ``-``, ``@``, tab or
carriage return) gets a leading ``'``, as OWASP advises against CSV injection: URLs and
labels come from test lists and servers that the operator does not control.

Speed (``bench/store.py`` compares the CSV export with ``sqlite3 -csv`` running the same
SELECT, on rows whose test-list notes, descriptions and URLs hold commas, quotes, line breaks
and non-ASCII text, or with ``--plain`` on rows that need none of it): SQL does the
formatting (times, booleans, ``NULL`` as ``''``), and Python's csv writer, which examines every
character of every cell, only writes the cells that need it. A page of rows is handled a
column at a time (:func:`_csv_text`): most columns of most stores — ids, times, networks,
verdicts, failure strings, and the test-list columns of a list without notes — hold no comma,
double quote or line break and start like no formula, which one join and a few scans of the
column (at C speed) establish; csv would write those cells as they are. A column that fails
goes cell by cell through csv and :func:`safe_cell`, remembered per export: a test list's
values repeat on every round, so each is written once (:class:`_CellText`).

JSONL: each stored measurement's OONI JSON on its own line, byte for byte as stored.

What an export holds (:func:`committed_rows`): exactly the measurements committed when it
began — whole batches, as a quiet database would give them — however long it runs beside a
daemon. On SQLite it reads 1,000 rows at a time, each batch in its own short read
transaction, resuming after the previous batch's last ``(measured_at, id)`` and taking no id
above the largest at its start: SQLite gives a new row a larger id than every stored one,
and a round's batch of rows commits together (a round in flight has its committed batches in
the export; its round row says it is still ``running``). One transaction for the whole
export would stop every checkpoint while it lasts, and the WAL file would grow with each
round written meanwhile (by the round's size: megabytes a round, gigabytes over a long
export); between batches the checkpoints run and the WAL stays at its usual few MB. The
price: rows deleted during the export (a prune) are missing from the batches read after, and
a target's test-list columns are as they were when its rows' batch was read. On PostgreSQL,
where ids come from a sequence (a transaction can commit after one that took larger ids) and
a long read stops no log from being recycled, one statement streams from one snapshot.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Generator, Iterable, Sequence
from contextlib import closing
from datetime import datetime
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    String,
    Text,
    bindparam,
    case,
    func,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from measurements.store.queries import AnySelect, measurement_query
from measurements.store.rows import MeasurementRow
from measurements.store.tables import MeasurementRecord

if TYPE_CHECKING:
    from measurements.store.store import Store

CSV_COLUMNS: tuple[str, ...] = MeasurementRow._fields[:-1]
"""The CSV header: every :class:`MeasurementRow` field but ``body``."""


class Writable(Protocol):
    """Where an export goes: any text stream (a file opened with ``newline=""``, ``sys.stdout``)."""

    def write(self, text: str, /) -> object: ...


_FORMULA_START = frozenset("=+-@\t\r")
_BATCH = 1000
"""Rows fetched per round trip, and turned into CSV text at a time (:func:`_csv_text`)."""
_SEP = "\x1f"
"""Joins a column's cells for the checks of :func:`_csv_text` (any character would do: a cell
that holds it can only make a check fail, which sends the column to the exact path)."""
_FORMULA_AFTER_SEP = re.compile(_SEP + "[=+\\-@\t\r]")
"""A cell that starts like a formula, after the first (one literal first character: re
searches that fast)."""
_CELL_MEMO_MAX = 50_000
"""Distinct cells :class:`_CellText` keeps before it starts again (a column of unique
values that all need quoting would otherwise grow it with the export)."""


def safe_cell(text: str) -> str:
    """*text*, with a leading ``'`` if a spreadsheet would read it as a formula."""
    return "'" + text if text[:1] in _FORMULA_START else text


class IsoTime(FunctionElement[str]):
    """SQL for a stored UTC time as ``YYYY-MM-DDThh:mm:ssZ`` text (:func:`probe.isotime.iso_utc`'s)."""

    type = String()
    inherit_cache = True


@compiles(IsoTime)
def _iso_time(element: IsoTime, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps SQLAlchemy's text ("YYYY-MM-DD hh:mm:ss.ffffff"): its first 19 characters,
    # the space made a T. String functions: strftime() parses the date, for the same text.
    value = compiler.process(element.clauses, **kw)
    return f"replace(substr(CAST({value} AS VARCHAR), 1, 19), ' ', 'T') || 'Z'"


@compiles(IsoTime, "postgresql")
def _iso_time_pg(element: IsoTime, compiler: SQLCompiler, **kw: Any) -> str:
    # Not CAST to text: that follows the server's DateStyle, which an operator may have changed.
    return f"""to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


def csv_query(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    asn: str | int | None = None,
) -> AnySelect:
    """:func:`~measurements.store.queries.measurement_query` with its cells as the CSV writes them.

    In SQL, ``measured_at`` becomes ``YYYY-MM-DDThh:mm:ssZ`` (:class:`IsoTime`),
    ``accessible`` ``true`` / ``false``, and ``NULL`` the empty string: every cell is text
    but ``runtime_s`` and ``round_id``, ready to be joined (the datetime round trip alone
    would cost more in Python than the rest of the export).
    """
    m = MeasurementRecord
    typed = measurement_query(since=since, until=until, target=target, asn=asn)
    text = {
        "measured_at": IsoTime(m.measured_at),
        "accessible": case((m.accessible.is_(True), "true"), (m.accessible.is_(False), "false"), else_=""),
    }
    columns: list[ColumnElement[Any]] = []
    for c in typed.selected_columns[:-1]:  # all but the body
        if c.name in text:
            columns.append(text[c.name].label(c.name))
        elif isinstance(c, Column) and c.nullable:
            columns.append(func.coalesce(c, "").label(c.name))
        else:
            columns.append(c)
    return typed.with_only_columns(*columns, maintain_column_froms=True)


def committed_pages(
    store: Store, stmt: AnySelect, *, batch: int = _BATCH, raw: bool = False
) -> Generator[tuple[Sequence[Sequence[Any]], int], None, None]:
    """Stream the rows of *stmt* that were committed when the call began, a page at a time.

    *stmt* is :func:`~measurements.store.queries.measurement_query` or built on it (its rows
    ordered by ``(measured_at, id)``). See the module docstring for what the rows are, and
    why SQLite reads them in pages of *batch*, each in its own read transaction. With *raw*,
    SQLite's rows come as the driver gives them (plain tuples, no result processing): right
    for a SELECT whose SQL already made every cell text or a number (:func:`csv_query`).

    Yields:
        ``(rows, extra)``: each row holds *stmt*'s cells, then *extra* more (on SQLite, the
        page's key, which :func:`committed_rows` cuts off; a CSV page ignores them).

    Raises:
        StorageError: the store cannot be read (also while iterating).
    """
    m = MeasurementRecord
    with store.snapshot() as conn:
        if conn.dialect.name != "sqlite":
            with conn.execution_options(yield_per=batch).execute(stmt) as result:
                for rows in result.partitions():
                    yield rows, 0
            return
        last_id = conn.execute(select(func.max(m.id))).scalar()
    if last_id is None:
        return
    # The key as stored (SQLite: text), so that resuming compares exactly what ORDER BY sorted;
    # "" sorts before every stored time. One statement, so SQLAlchemy compiles it once.
    at = type_coerce(m.measured_at, Text)
    after = tuple_(bindparam("after_at", type_=Text), bindparam("after_id", type_=Integer))
    page = stmt.add_columns(at, m.id).where(m.id <= last_id, tuple_(at, m.id) > after).limit(batch)
    key: dict[str, Any] = {"after_at": "", "after_id": 0}
    while True:
        with store.snapshot() as conn:
            result = conn.execute(page, key)
            rows = result.cursor.fetchall() if raw else result.all()
            result.close()
        if rows:
            yield rows, 2
        if len(rows) < batch:
            return
        key["after_at"], key["after_id"] = rows[-1][-2:]


def committed_rows(
    store: Store, stmt: AnySelect, *, batch: int = _BATCH, raw: bool = False
) -> Generator[Sequence[Any], None, None]:
    """Stream the rows of *stmt* that were committed when the call began, in its order:
    :func:`committed_pages`, a row at a time, each exactly *stmt*'s cells.

    Raises:
        StorageError: the store cannot be read (also while iterating).
    """
    with closing(committed_pages(store, stmt, batch=batch, raw=raw)) as pages:
        for rows, extra in pages:
            yield from map(itemgetter(slice(None, -extra)), rows) if extra else rows


def csv_rows(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    asn: str | int | None = None,
) -> Generator[Sequence[Any], None, None]:
    """Stream the CSV cells of the matching measurements, in :data:`CSV_COLUMNS` order.

    ``NULL`` comes as ``''`` (:func:`csv_query`).

    Raises:
        StorageError: the store cannot be read (also while iterating).
        ValueError: *asn* is not an ASN.
    """
    return committed_rows(store, csv_query(since=since, until=until, target=target, asn=asn), raw=True)


def measurement_rows(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    asn: str | int | None = None,
    with_body: bool = False,
) -> Generator[MeasurementRow, None, None]:
    """Stream the matching measurements (with their OONI JSON if *with_body*), for an export.

    Like :meth:`~measurements.store.store.Store.iter_measurements`, but what :func:`committed_rows`
    reads: no read transaction is held for the whole export.

    Raises:
        StorageError: the store cannot be read (also while iterating).
        ValueError: *asn* is not an ASN.
    """
    stmt = measurement_query(since=since, until=until, target=target, asn=asn, with_body=with_body)
    with closing(committed_rows(store, stmt)) as rows:
        yield from map(MeasurementRow._make, rows)


def export_csv(rows: Iterable[Sequence[Any]], out: Writable) -> int:
    """Write a header row and *rows* to *out* as CSV (excel dialect), spreadsheet-safe.

    Args:
        rows: cells (text, numbers or ``None``) in :data:`CSV_COLUMNS` order, e.g.
            ``csv_rows(store, since=...)``; ``None`` is written as an empty cell.
        out: a text stream opened with ``newline=""``.

    Returns:
        The number of rows written.

    Raises:
        StorageError: reading *rows* from the store failed part-way.
        OSError: *out* cannot be written.
    """
    rows = iter(rows)
    return _write_pages(iter(lambda: (list(islice(rows, _BATCH)), 0), ([], 0)), out)


def _write_pages(pages: Iterable[tuple[Sequence[Sequence[Any]], int]], out: Writable) -> int:
    """The header, then each page of :func:`committed_pages` (or rows batched so) as CSV."""
    csv.writer(out, dialect="excel").writerow(CSV_COLUMNS)
    cells = _CellText()
    n = 0
    for rows, extra in pages:
        out.write(_csv_text(rows, extra, cells))
        n += len(rows)
    return n


class _CellText(dict[str, str]):
    """Text cell → its CSV text: :func:`safe_cell`, then the excel dialect's quoting (the csv
    module's own writer, so the two can never differ). Kept per export: test-list columns
    repeat the same few thousand values, each written once."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = io.StringIO(newline="")
        self._writer = csv.writer(self._buffer, dialect="excel")

    def __missing__(self, cell: str) -> str:
        if len(self) >= _CELL_MEMO_MAX:
            self.clear()
        text = self[cell] = self.any(safe_cell(cell)) if cell else ""
        return text

    def any(self, cell: object) -> str:
        """*cell* (any value, no :func:`safe_cell`) as the csv writer writes it in a row of
        several (alone in a row, an empty one would be written ``""``)."""
        if cell is None or cell == "":
            return ""
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow([cell])
        return self._buffer.getvalue()[:-2]

    def of(self, cell: object) -> str:
        """Any cell as :func:`export_csv` writes it: text through :func:`safe_cell` (memoized)."""
        return self[cell] if isinstance(cell, str) else self.any(cell)


def _csv_text(rows: Sequence[Sequence[Any]], extra: int, cells: _CellText) -> str:
    """*rows* (each with *extra* cells past :data:`CSV_COLUMNS` to ignore) as CSV lines.

    A column at a time, since a column's cells are alike: one join of a text column and a few
    scans of it (C speed) say whether every cell stays as it is — holds no comma, ``"``, CR or
    LF, and starts like no formula — as in most columns of most stores. Only a column that
    fails goes cell by cell through :class:`_CellText` (whose memo makes repeated test-list
    values cheap). Numbers are written as ``str()`` writes them, as the csv writer does.
    Rows of another length than the header's go row by row through the csv writer.
    """
    width = len(CSV_COLUMNS)
    if set(map(len, rows)) != {width + extra}:
        return _csv_rows_one_by_one(rows, extra)
    columns: list[Sequence[Any]] = list(islice(zip(*rows, strict=True), width))  # transposed
    for i, column in enumerate(columns):
        try:
            joined = _SEP.join(column)
        except TypeError:  # not all text
            kinds = set(map(type, column))
            columns[i] = list(map(str, column)) if kinds <= {int, float} else list(map(cells.of, column))
            continue
        if (
            '"' in joined
            or "," in joined
            or "\n" in joined
            or "\r" in joined
            or joined[:1] in _FORMULA_START
            or _FORMULA_AFTER_SEP.search(joined) is not None
        ):
            columns[i] = list(map(cells.__getitem__, column))
    return "\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n"


def _csv_rows_one_by_one(rows: Sequence[Sequence[Any]], extra: int) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, dialect="excel")
    for row in rows:
        cells = row[: len(row) - extra]
        writer.writerow([safe_cell(v) if isinstance(v, str) else v for v in cells])
    return out.getvalue()


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
        stmt = csv_query(since=since, until=until, target=target, asn=asn)
        with closing(committed_pages(store, stmt, raw=True)) as pages:
            return _write_pages(pages, out)
    if format == "jsonl":
        rows = measurement_rows(store, since=since, until=until, target=target, asn=asn, with_body=True)
        with closing(rows):  # on an error in *out*, release the database cursor now, not at GC
            return export_jsonl(rows, out)
    raise ValueError(f"unknown export format {format!r} (csv or jsonl)")
