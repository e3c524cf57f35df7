"""Whether a measurement is making progress: steps say when the network gave something.

A round bounds how many measurements are *active* at once, so that their transfers do not
compete for the volunteer's bandwidth (competing fetches slow each other down and would
bend timings, the evidence of throttling). A measurement that waits on a peer that never
answers — the commonest shape of blocking: dropped packets, a silent server — transfers
nothing, and the round runner lets it give its slot to the next target while it runs on
to its own timeouts (:func:`probe.rounds.runner.measure_round`).

The runner hands each measurement a :data:`Progress` callback
(:func:`probe.webconnectivity.measure`'s ``on_progress``), as OONI hands its steps a trace:
the measurement calls it whenever something arrives — a step completed (a DNS answer, a
connect, a handshake, a response) — and passes it on to the HTTP step, which calls it for
every chunk of a body. Outside a round nobody listens: :func:`nothing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

Progress: TypeAlias = Callable[[], None]
"""Called, with no argument, each time the network gives the measurement something."""


def nothing() -> None:
    """The :data:`Progress` of a measurement nobody watches."""
