"""CSV and JSONL export: golden bytes, spreadsheet safety, privacy, constant memory.

The golden files pin the exact bytes. After an intended change of the export format or of
the OONI JSON (``probe/serialize.py``), regenerate them with
``REACHPROBE_UPDATE_GOLDEN=1 pytest tests/storage/test_export.py`` and review the diff.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select

from measurements.store.export import (
    CSV_COLUMNS,
    _CellText,
    _csv_text,
    committed_rows,
    csv_query,
    csv_rows,
    export,
    export_csv,
    export_jsonl,
    safe_cell,
)
from measurements.store.installation import Installation
from measurements.store.queries import measurement_query
from measurements.store.rows import TargetInfo
from measurements.store.store import Store, open_store
from measurements.store.tables import MeasurementRecord
from probe.model import Measurement
from probe.serialize import to_json
from tests.storage.factories import BASE, make_measurement, make_round, stream, uid

GOLDEN = Path(__file__).parent / "golden"


def golden_measurements() -> tuple[list[Measurement], list[TargetInfo]]:
    """Every verdict, plus the cells a spreadsheet or a CSV parser could trip on."""
    hour = timedelta(hours=1)
    ms = [
        make_measurement(0, kind="ok", url="https://example.com/"),
        make_measurement(1, kind="blockpage", url="http://example.org/", at=BASE + hour),
        make_measurement(2, kind="dns", url='https://example.net/search?q="a,b"', at=BASE + 2 * hour),
        make_measurement(3, kind="sni", url="https://ur.wikipedia.org/wiki/پاکستان", at=BASE + 3 * hour),
        make_measurement(4, kind="tcp", url="https://x.com/", at=BASE + 4 * hour, asn="AS45595", cc="PK"),
        make_measurement(5, kind="down", url="https://down.example/", at=BASE + 5 * hour, runtime_s=10.5),
        make_measurement(6, kind="nocontrol", url="https://evil.example/", at=BASE + 6 * hour),
        make_measurement(
            7,
            kind="blockpage",
            url="https://formula.example/",
            at=BASE + 7 * hour,
            mechanism="-2+3",
            confirmed="@SUM(A1:A9)\r\nline two",
        ),
    ]
    targets = [
        TargetInfo("https://example.com/", "NEWS", "News Media", "2024-01-02", "citizenlab", "a, b"),
        TargetInfo("https://evil.example/", '=HYPERLINK("http://evil.example","click")'),
        TargetInfo("https://x.com/", "\tGRP"),
        TargetInfo("https://down.example/", "+cmd|' /C calc'!A0"),
    ]
    return ms, targets


@pytest.fixture
def golden_store(store: Store) -> Store:
    ms, targets = golden_measurements()
    store.finish_round(store.begin_round(started_at=BASE), ms[:4], targets=targets)
    store.finish_round(store.begin_round(started_at=BASE), ms[4:], targets=targets)
    return store


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    data = text.encode("utf-8")
    if os.environ.get("REACHPROBE_UPDATE_GOLDEN") == "1":
        path.write_bytes(data)
    assert data == path.read_bytes()


def test_golden_csv(golden_store: Store) -> None:
    out = io.StringIO(newline="")
    assert export_csv(csv_rows(golden_store), out) == 8
    check_golden("export.csv", out.getvalue())


def test_golden_csv_whatever_the_postgresql_servers_date_style(pg_cluster: Any) -> None:
    database = pg_cluster.database("datestyle")
    pg_cluster.admin(f"ALTER DATABASE {database} SET DateStyle = 'SQL, DMY'")  # 20/01/2024 10:00:00
    store_url = pg_cluster.url(database)
    with open_store(store_url) as store:
        ms, targets = golden_measurements()
        store.finish_round(store.begin_round(started_at=BASE), ms[:4], targets=targets)
        store.finish_round(store.begin_round(started_at=BASE), ms[4:], targets=targets)
        out = io.StringIO(newline="")
        export_csv(csv_rows(store), out)
    check_golden("export.csv", out.getvalue())


def test_golden_jsonl(golden_store: Store) -> None:
    out = io.StringIO()
    assert export_jsonl(golden_store.iter_measurements(with_body=True), out) == 8
    check_golden("export.jsonl", out.getvalue())
    ms, _ = golden_measurements()
    assert out.getvalue() == "".join(to_json(m) + "\n" for m in ms)


def test_golden_csv_reads_back(golden_store: Store) -> None:
    out = io.StringIO(newline="")
    export_csv(csv_rows(golden_store), out)
    header, *rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert tuple(header) == CSV_COLUMNS
    assert "body" not in header and not any("ip" in c.split("_") for c in header)
    by_id = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert len(by_id) == 8
    formula = by_id["20240120100000.000000_PK_webconnectivity_0000000000000008"]
    assert (formula["mechanism"], formula["confirmed"]) == ("'-2+3", "'@SUM(A1:A9)\r\nline two")
    assert by_id["20240120100000.000000_PK_webconnectivity_0000000000000001"]["accessible"] == "true"
    assert by_id["20240120100000.000000_PK_webconnectivity_0000000000000006"]["accessible"] == "false"
    nocontrol = by_id["20240120100000.000000_PK_webconnectivity_0000000000000007"]
    assert (nocontrol["blocking"], nocontrol["accessible"], nocontrol["dns_consistency"]) == ("", "", "")
    assert nocontrol["category_code"] == '\'=HYPERLINK("http://evil.example","click")'
    # The outcome people read, beside OONI's keys: a confirmed blockpage is never "accessible".
    outcomes = [by_id[uid(i)]["outcome"] for i in range(8)]
    assert outcomes == ["reachable", "blocked.confirmed", "blocked.anomaly", "blocked.anomaly",
                        "blocked.anomaly", "down", "no_verdict.control", "blocked.confirmed"]  # fmt: skip
    first = by_id[uid(0)]
    assert [first[k] for k in ("measured_at", "category_description", "date_added", "source", "notes")] == [
        "2024-01-20T10:00:00Z", "News Media", "2024-01-02", "citizenlab", "a, b"
    ]  # fmt: skip
    assert {r["accessible"] for r in by_id.values()} == {"true", "false", ""}


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("", ""),
        ("a=1", "a=1"),
        ("https://example.com/?a=-1", "https://example.com/?a=-1"),
        (" =1", " =1"),
        ("'=1", "'=1"),
    ],
)
def test_safe_cell(cell: str, safe: str) -> None:
    assert safe_cell(cell) == safe


# export_csv keeps the columns that need nothing as they are and sends the others cell by cell
# through csv.writer and safe_cell: its output must be what csv.writer (excel dialect) and
# safe_cell make of every row, whichever way each column went.

PLAIN_ROW: tuple[Any, ...] = (
    "20240120100000.000000_PK_webconnectivity_0000000000000001", "2024-01-20T10:00:00Z",
    "https://example.com/", "NEWS", "News Media", "2024-01-02", "citizenlab", "", "AS17557", "PK", 1.25,
    "reachable", "false", "true", "", "", "consistent", "", "network_unreachable", "", "", "", 1,
)  # fmt: skip
TRICKY_CELLS: list[Any] = [
    None, "a,b", ",", 'a"b', '"', "a\rb", "a\nb", "\r\n", "a\r\nb", "\r", "\n",
    "=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "a,=b", "a\n=b", "a\r\n-b", -1.5, -1,
    float("-inf"),
]  # fmt: skip
"""Cells that a join would get wrong: text that needs csv's quoting or safe_cell, ``None``
(an empty cell), numbers that start like a formula (csv writes them as they are)."""
HARMLESS_CELLS: list[Any] = [
    "", "None", "xNonex", " =1", "a=1", "https://example.com/?a=-1&b=+2", "پاکستان", "\x00",
    "\u2028", "\x0b\x0c", "'", "'=1", "x\t", 0, 0.1 + 0.2, 1e16, float("nan"), True,
]  # fmt: skip
"""Cells that csv writes as ``str(cell)``."""


def _reference_csv(rows: list[Sequence[Any]]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, dialect="excel")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([safe_cell(v) if isinstance(v, str) else v for v in row] for row in rows)
    return out.getvalue()


def _with(cell: Any, i: int) -> tuple[Any, ...]:
    return (*PLAIN_ROW[:i], cell, *PLAIN_ROW[i + 1 :])


@pytest.mark.parametrize("cell", TRICKY_CELLS + HARMLESS_CELLS, ids=repr)
def test_a_text_column_goes_cell_by_cell_only_when_csv_would_change_a_cell(cell: Any) -> None:
    for i in range(len(CSV_COLUMNS)):
        # The odd cell inside a page, and first (no separator before it).
        for rows in ([PLAIN_ROW, _with(cell, i), PLAIN_ROW], [_with(cell, i), PLAIN_ROW]):
            cells = _CellText()
            assert _csv_text(rows, 0, cells) == _reference_csv(rows).split("\r\n", 1)[1], f"column {i}"
            if isinstance(cell, str) and isinstance(PLAIN_ROW[i], str):  # a text column
                assert bool(cells) == (cell in TRICKY_CELLS), f"column {i}"


def test_csv_export_equals_csv_writer_and_safe_cell() -> None:
    # Each odd cell in each column, among plain rows, across batch boundaries; rows of the
    # wrong length; and batches with nothing odd in them.
    odd = [_with(cell, i) for cell in TRICKY_CELLS + HARMLESS_CELLS for i in range(len(CSV_COLUMNS))]
    rows: list[Sequence[Any]] = [r for row in odd for r in (row, PLAIN_ROW, PLAIN_ROW)]
    rows += [(), ("",), ("x",), PLAIN_ROW[:-1], (*PLAIN_ROW, "=extra"), [*PLAIN_ROW]]
    rows += [PLAIN_ROW] * 2500
    out = io.StringIO(newline="")
    assert export_csv(rows, out) == len(rows)
    assert out.getvalue() == _reference_csv(rows)


def test_csv_export_of_every_character_equals_csv_writer() -> None:
    # Pins, on the Python that runs the tests, that the excel dialect quotes only the
    # characters _csv_text looks for in a column.
    chars = [chr(c) for c in [*range(0x3000), *range(0xFE00, 0x10000), 0x1F600, 0x10FFFF]]
    rows = [_with(c, 2) for c in chars] + [_with(f"a{c}b", 3) for c in chars]
    out = io.StringIO(newline="")
    export_csv(rows, out)
    assert out.getvalue() == _reference_csv(rows)


def test_jsonl_lines_are_ooni_measurements_without_the_volunteers_ip(golden_store: Store) -> None:
    out = io.StringIO()
    export(golden_store, out, format="jsonl")
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and all(line and line == line.strip() for line in lines[:-1])
    docs = [json.loads(line) for line in lines[:-1]]
    assert {d["probe_ip"] for d in docs} == {"127.0.0.1"}
    assert {d["test_name"] for d in docs} == {"web_connectivity"}


def test_export_filters_and_formats(golden_store: Store) -> None:
    out = io.StringIO(newline="")
    assert export(golden_store, out, format="csv", asn="AS45595") == 1
    row = out.getvalue().splitlines()[1]
    assert row.startswith(f"{uid(4)},2024-01-20T14:00:00Z,https://x.com/,")
    assert export(golden_store, io.StringIO(), format="jsonl", since=BASE + timedelta(hours=6)) == 2
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export(golden_store, io.StringIO(), format="xml")  # type: ignore[arg-type]
    rows = golden_store.iter_measurements()
    with pytest.raises(ValueError, match="with_body=True"):
        export_jsonl(rows, io.StringIO())
    rows.close()


@pytest.mark.parametrize(
    "filters",
    [{}, {"asn": "AS45595"}, {"target": "https://site3.example/"}, {"since": BASE + timedelta(seconds=15)}],
    ids=["all", "asn", "target", "since"],
)
def test_an_export_read_in_small_batches_gives_the_rows_of_one_read(store: Store, filters: Any) -> None:
    # Batches of 3 over ties on measured_at (a round of 20 at one instant), rows stored out of
    # time order (ids do not follow measured_at), and every filter's query plan.
    for r, (step, asn) in enumerate([(1, "AS17557"), (0, "AS45595"), (2, "AS17557")]):
        at = BASE + timedelta(seconds=30 - 10 * r)
        store.finish_round(
            store.begin_round(), make_round(20, first=20 * r, at=at, asn=asn, step=timedelta(seconds=step))
        )
    for stmt in (csv_query(**filters), measurement_query(**filters, with_body=True)):
        one_read = [tuple(row) for row in store.stream(stmt)]
        assert len(one_read) >= 3
        assert [tuple(row) for row in committed_rows(store, stmt, batch=3)] == one_read
        assert [tuple(row) for row in committed_rows(store, stmt, batch=len(one_read))] == one_read


class _Sink(io.TextIOBase):
    """A write-only text stream that keeps nothing, so memory measures the export alone."""

    def __init__(self) -> None:
        self.chars = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.chars += len(s)
        return len(s)


def _peak_bytes(store: Store, fmt: str, limit: int | None = None) -> tuple[int, int]:
    """Peak traced memory while exporting (the first *limit* rows of) *store*, and chars written."""
    sink = _Sink()
    rows: Generator[Any, None, None] = (
        csv_rows(store) if fmt == "csv" else store.iter_measurements(with_body=True)
    )
    tracemalloc.start()
    try:
        with closing(rows):
            some = rows if limit is None else islice(rows, limit)
            n = export_csv(some, sink) if fmt == "csv" else export_jsonl(some, sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n > 0
    return peak, sink.chars


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """20,000 stored measurements (~46 MB of JSON): 2,000 real rounds' worth, copied 10 times in SQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.sqlite3'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.url(cluster.database("big"))
    # Module-scoped: the per-test private data dir is not set yet, so the installation is explicit.
    installation = Installation.load(tmp_path_factory.mktemp("big-data"))
    with open_store(url, installation=installation) as store:
        for ms in stream(2_000, per_round=1_000):
            store.finish_round(store.begin_round(), ms)
        engine = create_engine(url)
        with engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(MeasurementRecord.__table__))]
            for copy in range(1, 10):
                for r in rows:
                    r.pop("id", None)
                    r["measurement_uid"] = f"c{copy:02d}" + r["measurement_uid"][3:]
                conn.execute(insert(MeasurementRecord), rows)
        engine.dispose()
        yield store


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_runs_in_constant_memory(big_store: Store, fmt: str) -> None:
    small, _ = _peak_bytes(big_store, fmt, limit=2_000)
    big, chars = _peak_bytes(big_store, fmt)
    # 20,000 rows are ~46 MB of JSON (at ~2.3 KB a measurement; the bound grows with the
    # measurement's size); streaming keeps one batch (1,000 rows) in memory at most.
    assert chars > (40_000_000 if fmt == "jsonl" else 3_000_000)
    assert big < 8_000_000 * max(1.0, chars / 46_000_000), f"peak {big} bytes for {chars} characters"
    assert big < 2 * small + 1_000_000, f"peak {big} bytes for 20k rows vs {small} for 2k"


# What probe export writes of stored cells that need quoting (test-list notes, URLs with
# commas, non-ASCII text) must be what csv.writer and safe_cell make of them, on both backends.

SQL_CELLS: list[str] = [
    cell for cell in TRICKY_CELLS + HARMLESS_CELLS if isinstance(cell, str) and cell != "\x00"
] + [
    '"quoted", said "he"',
    'multi\nline, with "quotes"\r\n',
    "ملاحظات، بالعربية",
    "日本語,テキスト",
    " ,",
    "",
]


def test_stored_cells_that_need_quoting_export_as_csv_writer_and_safe_cell_write_them(store: Store) -> None:
    targets = []
    ms = []
    for i, cell in enumerate(SQL_CELLS):
        url = f"https://site{i}.example/{i}"
        targets.append(TargetInfo(url, cell, cell, cell, cell, cell))
        ms.append(
            make_measurement(
                100 + i, kind="blockpage", url=url, at=BASE + timedelta(seconds=i), confirmed=cell
            )
        )
    store.finish_round(store.begin_round(started_at=BASE), ms, targets=targets)
    golden_measurements_ms, golden_targets = golden_measurements()
    store.finish_round(store.begin_round(started_at=BASE), golden_measurements_ms, targets=golden_targets)
    reference = _reference_csv(list(csv_rows(store)))
    out = io.StringIO(newline="")
    assert export(store, out, format="csv") == len(SQL_CELLS) + 8
    assert out.getvalue() == reference
    assert "ملاحظات، بالعربية" in reference and '"multi\nline, with ""quotes""\r\n"' in reference


def test_golden_csv_through_probe_export(golden_store: Store) -> None:
    out = io.StringIO(newline="")
    assert export(golden_store, out, format="csv") == 8
    check_golden("export.csv", out.getvalue())


def test_batches_that_need_quoting_are_written_by_csv_and_still_spreadsheet_safe() -> None:
    # Whole batches of rows that need csv's quoting (the notes of a test list), with, here and
    # there, a cell that starts like a formula, quoted or not, or only looks so inside a quote.
    notes = ['said "hi", left', "a,b", "line\nbreak", "ok, -1 more", "x\n=not a start"]
    formulas = ["=1+1", '=HYPERLINK("a,b")', "\r\nx", "-2", "@a,b"]
    rows: list[Sequence[Any]] = []
    for i in range(5000):
        row = _with(notes[i % len(notes)], 7)
        if i % 997 == 3:
            row = _with(formulas[(i // 997) % len(formulas)], 2 + i % 5)
        rows.append(row)
    rows += [PLAIN_ROW] * 1500 + [_with("a,b", 7)] * 1500  # plain batches, then quoting again
    out = io.StringIO(newline="")
    assert export_csv(rows, out) == len(rows)
    assert out.getvalue() == _reference_csv(rows)
