"""The export's read-ahead: the pages in order, errors where they happened, nothing left running."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import pytest

from measurements.store.readahead import read_ahead


def test_the_pages_come_in_order_each_read_in_the_reader_thread() -> None:
    threads: list[str] = []

    def pages() -> Generator[int, None, None]:
        for n in range(50):
            threads.append(threading.current_thread().name)
            yield n

    assert list(read_ahead(pages())) == list(range(50))
    assert set(threads) == {"export-read-ahead"}


def test_an_error_is_raised_where_it_happened_and_the_source_closed_in_its_thread() -> None:
    closed_in: list[str] = []

    def pages() -> Generator[int, None, None]:
        try:
            yield 1
            yield 2
            raise OSError("disk gone")
        finally:
            closed_in.append(threading.current_thread().name)

    got: list[int] = []
    with pytest.raises(OSError, match="disk gone"):
        for page in read_ahead(pages()):
            got.append(page)
    assert got == [1, 2]
    assert closed_in == ["export-read-ahead"]


def test_reading_stays_at_most_depth_pages_ahead_and_stops_with_the_caller() -> None:
    read: list[int] = []
    closed = threading.Event()

    def pages() -> Generator[int, None, None]:
        try:
            for n in range(1000):
                read.append(n)
                yield n
        finally:
            closed.set()

    stream = read_ahead(pages(), depth=2)
    assert next(stream) == 0
    time.sleep(0.3)  # time enough to read far ahead, were it not bounded
    assert len(read) <= 1 + 2 + 1  # the page taken, two waiting, one in the reader's hands
    stream.close()  # the caller stops early (a broken pipe): the reader ends, the source is closed
    assert closed.is_set()
    assert not any(t.name == "export-read-ahead" for t in threading.enumerate())
