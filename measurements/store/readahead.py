"""Read the next pages of an export in a thread while the caller writes the one before.

An export's time is two halves of about the same size: SQLite finding and decoding the rows,
and Python turning them into text. The first runs in C with the GIL released (``sqlite3``
steps the statement without it), so a reader thread can fetch page *n + 1* while the caller
formats page *n*: the CSV export then takes about the longer half, not the sum, on any
machine with two cores (``bench/store.py`` prints both the time and the CPU). At most
*depth* pages wait, so memory stays bounded whatever the export's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")

_POLL_S = 0.1
"""How often a reader blocked on a full queue looks whether the caller has gone."""


def read_ahead(pages: Generator[T, None, None], *, depth: int = 2) -> Generator[T, None, None]:
    """*pages* as they come, each read in a thread of its own before the caller asks for it.

    *pages* runs entirely in that thread (its database connections stay there) and is closed
    there, whether it ends, raises, or the caller stops early (``close()``, an error while
    writing): the generator waits for the thread before it returns.

    Raises:
        Whatever *pages* raised, at the point in the stream where it raised.
    """
    slots: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    gone = threading.Event()
    end = object()

    def put(item: tuple[bool, object]) -> bool:
        while not gone.is_set():
            try:
                slots.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def read() -> None:
        try:
            for page in pages:
                if not put((True, page)):
                    return
            put((True, end))
        except BaseException as exc:  # handed to the caller, who raises it
            put((False, exc))
        finally:
            pages.close()

    reader = threading.Thread(target=read, name="export-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                assert isinstance(item, BaseException)
                raise item
            if item is end:
                return
            yield item  # type: ignore[misc]  # a page of *pages*: T
    finally:
        gone.set()
        reader.join()
