"""One round as the volunteer's product runs it: plan from settings, measure, store as it goes.

``probe run`` and the daemon's scheduled job both call :func:`run_round`, so a round stored by
the daemon is the same thing as one started by hand. The store is written as the round goes:
a ``running`` row first (the heartbeat that the probe was up, committed before any traffic),
then the measurements in batches of up to :data:`WRITE_BATCH` as they end (each batch one
transaction), then the ``complete`` mark with the round's heartbeat. The round keeps no
measurement once it is stored — only the heartbeat's tally and its counts — so its memory
does not grow with its target list. A round that ends any other way — cancelled (SIGTERM,
Ctrl-C), a progress hook that raised, a write that failed — marks itself ``interrupted``,
keeping the batches already stored (every measurement is whole or absent); the cancellation
or the error is what the caller sees, whether or not the mark could be written.

The round writes through :class:`~probe.rounds.roundstore.RoundStore`, which the caller hands in
(``probe run`` and the daemon open the real store), and never on its event loop: every write
runs in a worker thread (:func:`off_loop`), so the loop keeps serving while a write waits
for the database.

The plan holds everything a round reads from files: the TLS trust (``measure.ca_file``), the
fingerprints and the ASN database are loaded into its :class:`~probe.webconnectivity.MeasureConfig`,
not cached for the process's life; a daemon calls :func:`replan` before each round, so a
rotated CA file is trusted from the next round on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from probe import __version__, control, webconnectivity
from probe.errors import ConfigError, StorageError
from probe.rounds import families, runner
from probe.rounds.roundstore import HeartbeatTally, RoundStore
from probe.rounds.settings import Settings
from probe.rounds.settle import settled
from probe.rounds.targets import Target, dedupe, load_many
from probe.steps import dns, tls

log = logging.getLogger("probe.rounds.service")

T = TypeVar("T")


def measure_config(settings: Settings) -> webconnectivity.MeasureConfig:
    """The measurement configuration the settings describe.

    Its TLS contexts are not built yet (:func:`probe.webconnectivity.prepare` builds them),
    so a caller may still change ``ca_file``.

    Raises:
        ConfigError: a configured resolver is malformed, or the ASN database or a
            fingerprint file is unreadable or invalid.
    """
    from probe.fingerprints import load_fingerprints
    from probe.ipinfo import load_asn_database

    m = settings.measure
    return webconnectivity.MeasureConfig(
        resolvers=tuple(dns.parse_resolver(text) for text in m.resolvers),
        use_system_resolver=m.use_system_resolver,
        ca_file=m.ca_file,
        dns_timeout=m.dns_timeout,
        tcp_timeout=m.tcp_timeout,
        tls_timeout=m.tls_timeout,
        http_timeout=m.http_timeout,
        allow_loopback=m.allow_loopback,
        decoy_sni=m.decoy_sni,
        control_url=settings.control.url,
        control_max_in_flight=settings.control.max_in_flight,
        public_networks=settings.network.public_networks,
        asn_of=load_asn_database(settings.network.asn_database),
        fingerprints=load_fingerprints(settings.network.fingerprints),
    )


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """Everything a round needs, validated before the first packet or database write.

    *config* is ready to measure with: its TLS contexts and fingerprints are built
    (:func:`probe.webconnectivity.prepare`) from the files as they were when it was planned.
    """

    settings: Settings
    targets: tuple[Target, ...]
    config: webconnectivity.MeasureConfig


def plan_round(
    settings: Settings,
    *,
    targets: Sequence[Target] | None = None,
    warn: Callable[[str], None] | None = None,
    strict: bool = False,
) -> RoundPlan:
    """Load the target lists and build the measurement configuration.

    Args:
        settings: the settings; their ``targets.lists`` are read unless *targets* is given.
        targets: measure these instead (``probe run --input``/``--input-file``).
        warn: called with ``file:line: problem`` for each bad row of a list, which is
            skipped; by default a warning on the ``probe.rounds.targets`` logger (the daemon's log).
        strict: a bad row is a :class:`ConfigError` instead (``probe run --check``).

    Raises:
        ConfigError: a target list is missing or not a test list, a row is bad (*strict*),
            nothing is left to measure, or the measurement settings are invalid.
    """
    problems: list[str] | None = None if strict else []
    if targets is None:
        listed = load_many(settings.target_list_paths(), problems=problems)
        targets = families.without_excluded(listed, settings)
        where = f"{settings.source}: " if settings.source else ""
        empty = f"{where}targets.lists: the target lists contain no URL"
    else:
        targets, empty = dedupe(targets), "no target to measure"
    for problem in problems or ():
        (warn or _log_skipped)(problem)
    if not targets:
        raise ConfigError(empty)
    return RoundPlan(settings=settings, targets=tuple(targets), config=_prepared(settings))


def replan(plan: RoundPlan) -> RoundPlan:
    """*plan* with what it read from files read again: TLS trust, fingerprints, ASN database.

    What a daemon calls before each round (in a worker thread: it reads files and loads a
    trust store), so a rotated CA file or an updated fingerprint file counts from the next
    round on. The targets stay the plan's.

    Raises:
        ConfigError: a file is now missing or invalid (the caller may keep *plan*).
    """
    return replace(plan, config=_prepared(plan.settings))


def _prepared(settings: Settings) -> webconnectivity.MeasureConfig:
    return webconnectivity.prepare(measure_config(settings))


def _log_skipped(problem: str) -> None:
    logging.getLogger("probe.targets").warning("%s (row skipped)", problem)


WRITE_BATCH = 16
"""Measurements per write: few transactions for a long list, little held while one waits."""


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What a stored round did: its counts, not its measurements (those are in the store).

    A caller that wants a per-target summary (``probe run``'s table) builds it in its
    ``on_result`` hook and keeps only that.
    """

    round_id: int
    started_at: datetime
    ended_at: datetime
    n_targets: int
    n_measured: int
    """Targets measured and stored."""
    n_errors: int
    """Targets whose measurement raised (a bug): nothing stored for them."""
    network_up: bool | None = None
    """The round's heartbeat, as stored: each measurement's outcome depends on it."""
    beyond: families.FamiliesReport = field(default_factory=families.FamiliesReport)
    """What the tests beyond websites did after the web list (``[tests]``)."""


async def run_round(
    plan: RoundPlan, store: RoundStore, *, on_result: runner.ProgressHook | None = None
) -> RoundReport:
    """Measure every target of *plan*, storing the measurements as they end, then close the round.

    *on_result* sees each result (its measurement included) before it is stored; it must not
    keep the measurement if the round's memory is to stay bounded.

    Raises:
        StorageError: the database cannot be written (the round is marked ``interrupted``
            with the batches stored before; the batch that failed is not stored).
        asyncio.CancelledError: the round was cancelled; it is marked ``interrupted`` (when
            the mark cannot be written either, that is logged and the round is left to the
            next clean-up: the cancellation is still what is raised).
        Exception: whatever *on_result* raised; the round is marked ``interrupted``.
    """
    started = datetime.now(UTC)
    bounds = plan.settings.measure
    max_open = runner.fit_max_open(_open_limit(plan.settings, plan.config), bounds.concurrency)
    config = await identify(plan.config)
    begin = partial(
        store.begin_round,
        started_at=started,
        probe_asn=config.probe_asn,
        probe_cc=config.probe_cc,
        software_version=__version__,
        config_digest=plan.settings.digest(),
        n_targets=len(plan.targets),
    )
    begun = asyncio.ensure_future(asyncio.to_thread(begin))
    try:
        round_id = await settled(begun)
    except asyncio.CancelledError:
        if begun.done() and not begun.cancelled() and begun.exception() is None:
            await _give_up(store, begun.result())  # begun as the cancellation came: end it
        raise
    writer = _Writer(store, round_id)
    stored = False
    try:
        await runner.stream_round(
            plan.targets,
            config=config,
            concurrency=bounds.concurrency,
            max_open=max_open,
            stall_after=bounds.stall_after,
            on_result=on_result,
            sink=writer.put,
        )
        # The tests beyond websites ([tests]), after the web list: their transfers never
        # compete with the web measurements' (the throttling evidence's guarantee).
        beyond = await families.run_families(
            plan.settings, config, store=store, round_id=round_id, started=started
        )
        ended = datetime.now(UTC)
        beat = writer.tally.heartbeat
        last = writer.take()
        finish = partial(
            store.finish_round,
            round_id,
            [r.measurement for r in last if r.measurement is not None],
            targets=[r.target for r in last],  # a Target is the TargetInfo the store keeps
            heartbeat=beat,
            ended_at=ended,
        )
        del last
        await off_loop(finish)
        stored = True
    except BaseException:
        # Cancelled, a hook that raised, a write that failed: do not leave the round looking as
        # if it still ran, nor its lock held. The batches stored so far stay, marked so.
        if not stored:
            await _give_up(store, round_id)
        raise
    return RoundReport(
        round_id=round_id,
        started_at=started,
        ended_at=ended,
        n_targets=len(plan.targets),
        n_measured=writer.n_measured,
        n_errors=beat.n_errors,
        network_up=beat.network_up,
        beyond=beyond,
    )


def _open_limit(settings: Settings, config: webconnectivity.MeasureConfig) -> int:
    """The round's ``max_open``: as set, else the default, but with a control no more than
    twice ``control.max_in_flight`` (every control request then gets its turn within its wait,
    :mod:`probe.control`; more open measurements would lose verdicts to the queue)."""
    limit = settings.measure.open_limit
    if settings.measure.max_open is None and config.control_url is not None:
        limit = max(settings.measure.concurrency, min(limit, 2 * settings.control.max_in_flight))
    return limit


WRITE_BEHIND = 2 * WRITE_BATCH
"""Finished results that may wait for the store besides the batch being written; a result
beyond waits, holding its target's place in progress, so the next targets wait too."""


class _Writer:
    """The round's sink: batches finished results and stores each batch off the event loop.

    At most one write runs at a time. While it runs, results gather, at most
    :data:`WRITE_BEHIND` of them; whoever hands in a result beyond waits for room (and holds
    its target's place in progress), so a slow store (an SD card) holds a round at a batch
    and :data:`WRITE_BEHIND` results in memory, however many targets may be in progress
    (``max_open``: hundreds, most of them waiting on silent servers).
    """

    def __init__(self, store: RoundStore, round_id: int) -> None:
        self._store = store
        self._round_id = round_id
        self._pending: list[runner.Result] = []
        self._lock = asyncio.Lock()
        self._room = asyncio.Semaphore(WRITE_BEHIND)
        self.tally = HeartbeatTally()
        self.n_measured = 0

    async def put(self, result: runner.Result) -> None:
        await self._room.acquire()
        if result.measurement is None:
            self.tally.n_errors += 1
        else:
            self.tally.add(result.measurement)
            self.n_measured += 1
        self._pending.append(result)
        if len(self._pending) >= WRITE_BATCH:
            async with self._lock:  # one write at a time; the next takes what gathered meanwhile
                batch = self.take()
                if batch:
                    write = partial(
                        self._store.add_measurements,
                        self._round_id,
                        [r.measurement for r in batch if r.measurement is not None],
                        targets=[r.target for r in batch],
                    )
                    n = len(batch)
                    del batch
                    try:
                        await off_loop(write)
                    finally:
                        for _ in range(n):
                            self._room.release()

    def take(self) -> list[runner.Result]:
        """The results not yet written (the writer forgets them)."""
        batch, self._pending = self._pending, []
        return batch


async def off_loop(call: Callable[[], T]) -> T:
    """Run *call* — blocking work, a database transaction — in a worker thread, off the event loop.

    Once started it runs to its end: a cancellation meanwhile waits for it (it is one bounded
    transaction; abandoning it would leave the write racing whatever comes next), then is
    raised, chained to the call's own exception if it failed.

    Returns:
        What *call* returned.
    """
    return await settled(asyncio.ensure_future(asyncio.to_thread(call)))


async def _give_up(store: RoundStore, round_id: int) -> None:
    """Mark round *round_id* ``interrupted``; a failure to is logged, never raised in place of
    what ended the round."""
    await off_loop(partial(_mark_interrupted, store, round_id))


def _mark_interrupted(store: RoundStore, round_id: int) -> None:
    try:
        store.mark_interrupted(round_id)
    except StorageError as exc:  # the store let the round go all the same: a clean-up marks it
        log.warning("%s (round %d left running: the next clean-up marks it interrupted)", exc, round_id)


WHOAMI_TIMEOUT = 10.0
"""Seconds the round waits for ``whoami`` before starting (a blocked control costs no more)."""


async def identify(config: webconnectivity.MeasureConfig) -> webconnectivity.MeasureConfig:
    """*config* with what the control's ``whoami`` says about the probe (once per round).

    Asked when a control is configured: the network (ASN, country), when not set, which the
    round and every measurement then record; and the address the control sees the probe at,
    which every measurement scrubs from itself (``volunteer_addresses``: in memory only,
    never logged or stored). No measurement then asks again. Unanswered, the network stays
    ``AS0``/``ZZ`` and each measurement asks beside its control call.
    """
    if config.control_url is None:
        return config
    contexts = config.contexts or tls.client_contexts(config.ca_file)
    found = await control.whoami(
        config.control_url,
        timeout=min(webconnectivity.control_wait(config), WHOAMI_TIMEOUT),
        ssl_context=contexts.httpx,
    )
    if found is None:
        return config
    if (config.probe_asn, config.probe_cc) == ("AS0", "ZZ"):
        config = replace(config, probe_asn=found.probe_asn, probe_cc=found.probe_cc)
    if found.probe_ip is not None and found.probe_ip not in config.volunteer_addresses:
        config = replace(config, volunteer_addresses=(*config.volunteer_addresses, found.probe_ip))
    return config
