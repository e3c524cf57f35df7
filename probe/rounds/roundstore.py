"""What a round writes, and the store interface it writes through.

The round (:func:`probe.rounds.service.run_round`) stores nothing itself: it calls the four methods
of :class:`RoundStore`, which :class:`measurements.store.store.Store` implements. The round never
imports ``measurements``; the composition roots (``probe run``, ``probe daemon``) open the
real store and hand it in. Arrows go one way: ``measurements`` reads this module (as it reads
:mod:`probe.model`), this module reads nothing of ``measurements``.

What crosses the interface is defined here, beside it: a target's test-list metadata
(:class:`TargetInfo`) and the round's heartbeat (:class:`Heartbeat`, :func:`heartbeat_of`,
:class:`HeartbeatTally` for a round that hands its measurements over as they end), which the
round reports and the store records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from probe.model import AnyMeasurement, Measurement

__all__ = ["Heartbeat", "HeartbeatTally", "RoundStore", "TargetInfo", "heartbeat_of"]


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """Test-list metadata of one URL, stored with the target by :meth:`RoundStore.finish_round`."""

    url: str
    category_code: str = ""
    category_description: str = ""
    date_added: str = ""
    source: str = ""
    notes: str = ""

    @property
    def has_metadata(self) -> bool:
        """Does the test list say anything about the URL (then the stored metadata is refreshed)?"""
        return any((self.category_code, self.category_description, self.date_added, self.source, self.notes))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a round says about the network as a whole, stored on its ``rounds`` row.

    A gap with no round at all means the probe was offline; a round with ``network_up``
    false means the probe ran and could reach nothing (a shutdown, or the volunteer's link).
    """

    network_up: bool | None
    """Did any TCP connect of the round succeed? ``None``: nothing was measured."""
    control_reachable: bool | None
    """Did the control vantage answer at least once? ``None``: no control was asked."""
    n_errors: int = 0
    """Targets that produced no measurement (the measurement itself raised)."""


def heartbeat_of(measurements: Sequence[AnyMeasurement], *, n_errors: int = 0) -> Heartbeat:
    """Derive a round's heartbeat from its measurements.

    ``network_up`` is true when any TCP connect succeeded, false when measurements exist
    and none did, ``None`` when there are none. A measurement confirmed as a block page does
    not count: the censor's own server, inside the ISP, answering says nothing of the network
    beyond it (a mobile-data shutdown with the ISP's DNS blockpage still served; the lab's
    :func:`probe.lab.outcome.network_up` applies the same rule to the JSON it reads).
    ``control_reachable`` is true when any measurement has a control response, false when
    control was asked and always failed, ``None`` when no measurement asked for control.
    """
    tally = HeartbeatTally(n_errors=n_errors)
    for m in measurements:
        tally.add(m)
    return tally.heartbeat


class HeartbeatTally:
    """:func:`heartbeat_of`, one measurement at a time: what a round keeps instead of its measurements."""

    __slots__ = ("_control", "_measured", "_up", "n_errors")

    def __init__(self, *, n_errors: int = 0) -> None:
        self._measured = False
        self._up = False
        self._control: bool | None = None
        self.n_errors = n_errors
        """Targets that produced no measurement so far."""

    def add(self, m: AnyMeasurement) -> None:
        """Count measurement *m* in (a document — a test other than Web Connectivity — says
        nothing of the round's network or control here: only its own summary)."""
        if not isinstance(m, Measurement):
            return
        self._measured = True
        tk = m.test_keys
        if not self._up and not tk.confirmed:
            self._up = any(c.status.success for c in tk.tcp_connect)
        if tk.control is not None:
            self._control = True
        elif tk.control_failure and self._control is None:
            self._control = False

    @property
    def heartbeat(self) -> Heartbeat:
        """The heartbeat of the measurements added so far."""
        if not self._measured:
            return Heartbeat(network_up=None, control_reachable=None, n_errors=self.n_errors)
        return Heartbeat(network_up=self._up, control_reachable=self._control, n_errors=self.n_errors)


class RoundStore(Protocol):
    """Where a round is written: exactly the calls :func:`probe.rounds.service.run_round` makes.

    A round is :meth:`begin_round`, any number of :meth:`add_measurements` as its measurements
    end (each batch stored whole or not at all), then :meth:`finish_round`, which closes it;
    a round that ends any other way is left ``running`` or marked ``interrupted`` with the
    batches stored so far. The calls block (they are database transactions); the round makes
    them off its event loop, one at a time, so an implementation needs to be safe to call from a worker thread
    but not from two at once. Each raises :class:`~probe.errors.StorageError` when it cannot
    write, having changed nothing.
    """

    def begin_round(
        self,
        *,
        started_at: datetime | None = None,
        probe_asn: str = "AS0",
        probe_cc: str = "ZZ",
        software_version: str = "",
        config_digest: str = "",
        n_targets: int = 0,
    ) -> int:
        """Record a ``running`` round (the heartbeat that the probe was up); return its id.

        The round is held as in flight until :meth:`finish_round` or :meth:`mark_interrupted`.
        """
        ...

    def add_measurements(
        self, round_id: int, measurements: Sequence[AnyMeasurement], *, targets: Iterable[TargetInfo] = ()
    ) -> None:
        """Store a batch of the round's finished measurements in one transaction (and *targets*'
        metadata); the round stays ``running``."""
        ...

    def finish_round(
        self,
        round_id: int,
        measurements: Sequence[AnyMeasurement] = (),
        *,
        targets: Iterable[TargetInfo] = (),
        heartbeat: Heartbeat | None = None,
        ended_at: datetime | None = None,
    ) -> None:
        """Store the last *measurements* and mark the round ``complete`` with *heartbeat*, in one
        transaction (the outcomes the heartbeat decides are set then)."""
        ...

    def mark_interrupted(self, round_id: int | None = None) -> int:
        """Give up round *round_id* (mark it ``interrupted``); return how many rounds were marked.

        The round stops being held in flight even when the mark cannot be written, so a
        later clean-up marks it.
        """
        ...
