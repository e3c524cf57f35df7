"""CSV and JSONL downloads of what a page shows: its measurements, as ``probe export`` writes them.

The rows come from :func:`~measurements.store.export.committed_rows` (short read transactions on
SQLite, one snapshot on PostgreSQL) over the export's own SELECTs narrowed by the page's
:class:`~.filters.Filters`, and are written by :func:`~measurements.store.export.export_csv` and
:func:`~measurements.store.export.export_jsonl` in chunks, so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Final

from starlette.responses import StreamingResponse

from measurements.store.export import committed_rows, csv_query, export_csv, export_jsonl
from measurements.store.queries import measurement_query
from measurements.store.rows import MeasurementRow
from measurements.store.store import Store
from measurements.views.dashboard import data
from measurements.views.dashboard.filters import Filters

_CHUNK: Final = 2000
MEDIA_TYPES: Final = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def download(store: Store, f: Filters, fmt: str) -> StreamingResponse:
    """The measurements *f* selects as an attachment in *fmt* (``csv`` or ``jsonl``)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="reachprobe-{stamp}.{fmt}"'}
    chunks = _csv_chunks(store, f) if fmt == "csv" else _jsonl_chunks(store, f)
    return StreamingResponse(chunks, media_type=MEDIA_TYPES[fmt], headers=headers)


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str, /) -> int:
        self.parts.append(text)
        return len(text)

    def take(self) -> str:
        text, self.parts = "".join(self.parts), []
        return text


def _csv_chunks(store: Store, f: Filters) -> Iterator[str]:
    rows = committed_rows(store, data.narrowed(csv_query(), f), raw=True)
    out = _Buffer()
    export_csv([], out)
    header = out.take()
    yield header
    while batch := list(islice(rows, _CHUNK)):
        export_csv(batch, out)
        yield out.take().removeprefix(header)


def _jsonl_chunks(store: Store, f: Filters) -> Iterator[str]:
    rows = map(
        MeasurementRow._make, committed_rows(store, data.narrowed(measurement_query(with_body=True), f))
    )
    out = _Buffer()
    while batch := list(islice(rows, _CHUNK)):
        export_jsonl(batch, out)
        yield out.take()
