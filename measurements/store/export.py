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
character of every cell, only writes the rows that need it. Most rows of most stores are plain
— no cell holds a comma, a double quote or a line break, or starts like a formula — and csv
would write them as they are, with commas between the cells. So a batch of rows is joined
that way, and a few passes over the joined text check that csv would have written the same
(:func:`_plain_csv`). A batch that fails is written by csv at once (its C writer quotes what
needs it), unless a cell in csv's text may start like a formula (:func:`_quoted_csv`); only
then the batch goes row by row, with :func:`safe_cell` for the rows that need it. When a batch
needed quoting, the next is given to csv first: test lists with notes quote most batches.

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
from itertools import islice, starmap
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
"""Rows fetched per round trip, and joined and checked at a time (:func:`_plain_csv`)."""
_LINE = ",".join(["{}"] * len(CSV_COLUMNS)) + "\r\n"
"""One CSV line of plain cells: for text and numbers, ``format(cell, "")`` is ``str(cell)``,
which is what the csv writer writes."""
# Two patterns rather than "[,\n][=+\-@\t]": re searches much faster for a pattern that starts
# with one literal character. (A cell starting with CR already fails _plain_csv's CR count.)
_FORMULA_AFTER_COMMA = re.compile(",[=+\\-@\t]")
_FORMULA_AFTER_LF = re.compile("\n[=+\\-@\t]")
_FORMULA_STARTS = tuple(
    re.compile(p) for p in (",[=+\\-@\t\r]", ',"[=+\\-@\t\r]', "\n[=+\\-@\t\r]", '\n"[=+\\-@\t\r]')
)
"""Where a cell that csv has written may start like a formula (:func:`_quoted_csv`); each
pattern starts with one literal character, which re searches fast."""


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


def committed_rows(
    store: Store, stmt: AnySelect, *, batch: int = _BATCH, raw: bool = False
) -> Generator[Sequence[Any], None, None]:
    """Stream the rows of *stmt* that were committed when the call began, in its order.

    *stmt* is :func:`~measurements.store.queries.measurement_query` or built on it (its rows
    ordered by ``(measured_at, id)``). See the module docstring for what the rows are, and
    why SQLite reads them in batches of *batch*, each in its own read transaction. With
    *raw*, SQLite's rows come as the driver gives them (plain tuples, no result processing):
    right for a SELECT whose SQL already made every cell text or a number (:func:`csv_query`),
    and a fifth of the CSV export's time saved.

    Raises:
        StorageError: the store cannot be read (also while iterating).
    """
    m = MeasurementRecord
    with store.snapshot() as conn:
        if conn.dialect.name != "sqlite":
            with conn.execution_options(yield_per=batch).execute(stmt) as result:
                for rows in result.partitions():
                    yield from rows
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
    cut = itemgetter(slice(None, -2))
    while True:
        with store.snapshot() as conn:
            result = conn.execute(page, key)
            rows = result.cursor.fetchall() if raw else result.all()
            result.close()
        yield from map(cut, rows)
        if len(rows) < batch:
            return
        key["after_at"], key["after_id"] = rows[-1][-2:]


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
    writer = csv.writer(out, dialect="excel")
    writer.writerow(CSV_COLUMNS)
    rows = iter(rows)
    n = 0
    quoting = False  # did the last batch need csv's quoting? Then so will this one, likely
    while batch := list(islice(rows, _BATCH)):  # the export's hot path: see the module docstring
        text = None if quoting else _plain_csv(batch)
        if text is None:
            text = _quoted_csv(batch)
            quoting = text is not None
        if text is None:
            for row in batch:
                line = _plain_csv([row])
                if line is not None:
                    out.write(line)
                else:
                    writer.writerow([safe_cell(v) if isinstance(v, str) else v for v in row])
        else:
            out.write(text)
        n += len(batch)
    return n


def _quoted_csv(rows: list[Sequence[Any]]) -> str | None:
    """*rows* as the csv writer writes them, if no cell needs :func:`safe_cell`.

    Returns ``None`` when a cell may start like a formula: its first character is one of
    :func:`safe_cell`'s, at the start of the text or after a comma or LF, quoted or not (text
    inside a quoted cell can look so too: those rows go one by one).
    """
    out = io.StringIO(newline="")
    csv.writer(out, dialect="excel").writerows(rows)
    text = out.getvalue()
    if text.lstrip('"')[:1] in _FORMULA_START or any(p.search(text) for p in _FORMULA_STARTS):
        return None
    return text


def _plain_csv(rows: list[Sequence[Any]]) -> str | None:
    """*rows* as the csv writer writes them, if that needs neither its quoting nor :func:`safe_cell`.

    Returns ``None`` otherwise. The excel dialect writes a cell as ``str(cell)`` unless the
    cell is ``None`` (an empty cell) or its text holds a comma, ``"``, CR or LF (then it
    quotes it). Joining the cells with commas (:data:`_LINE`) is right, then, when the
    result holds no ``"``, no ``None`` (a cell that merely contains the word goes to csv
    too), and no more commas, CRs and LFs than the joins put there. Each cell then starts at
    the start of the text or after a comma or LF: where formula characters are looked for.
    """
    if set(map(len, rows)) != {len(CSV_COLUMNS)}:
        return None  # _LINE has one field per column
    text = "".join(starmap(_LINE.format, rows))
    plain = (
        '"' not in text
        and "None" not in text
        and text.count(",") == len(rows) * (len(CSV_COLUMNS) - 1)
        and text.count("\r") == text.count("\n") == len(rows)
        and text[:1] not in _FORMULA_START
        and _FORMULA_AFTER_COMMA.search(text) is None
        and _FORMULA_AFTER_LF.search(text) is None
    )
    return text if plain else None


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
        rows = measurement_rows(store, since=since, until=until, target=target, asn=asn, with_body=True)
        with closing(rows):  # on an error in *out*, release the database cursor now, not at GC
            return export_jsonl(rows, out)
    raise ValueError(f"unknown export format {format!r} (csv or jsonl)")
