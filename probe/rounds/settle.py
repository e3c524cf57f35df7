"""Awaiting what must end before its caller does, whatever cancels the caller meanwhile.

Light on purpose: the daemon's side (:mod:`probe.rounds.process`) waits so for a job's process
it stops, and must not import what measures; a round (:mod:`probe.rounds.service`) waits so
for its writes.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def settled(work: asyncio.Future[T]) -> T:
    """*work*'s result once it is done, however often the waiting task is cancelled meanwhile.

    What must end before its caller does (a write, a process being stopped) is awaited so.

    Raises:
        asyncio.CancelledError: the task was cancelled while it waited (after *work* ended).
    """
    cancelled = False
    while not work.done():
        try:
            await asyncio.wait((work,))
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError from (None if work.cancelled() else work.exception())
    return work.result()
