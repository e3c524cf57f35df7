"""Whether a measurement is making progress: steps say when the network gave something.

A round bounds how many measurements are *active* at once, so that their transfers do not
compete for the volunteer's bandwidth (competing fetches slow each other down and would
bend timings, the evidence of throttling). A measurement that waits on a peer that never
answers — the commonest shape of blocking: dropped packets, a silent server — transfers
nothing, and the round runner lets it give its slot to the next target while it runs on
to its own timeouts (:func:`probe.runner.measure_round`).

The steps call :func:`note` whenever something arrives: a step completed (a DNS answer, a
connect, a handshake, a response) or a chunk of a body. The runner listens per measurement
through a context variable, so the steps need no reference to the round that runs them, and
outside a round :func:`note` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Listener = Callable[[], None]

_listener: ContextVar[Listener | None] = ContextVar("reachprobe_activity", default=None)


def note() -> None:
    """Tell whoever runs the current measurement that the network just gave something."""
    listener = _listener.get()
    if listener is not None:
        listener()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call *listener* on every :func:`note` of the code run inside (tasks it starts too)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
