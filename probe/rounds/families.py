"""The tests beyond websites in a round: the families the volunteer selected, within the data budget.

The round measures its web list, then calls :func:`run_families`, which runs each family
``[tests]`` switches on (:class:`~probe.rounds.settings.Tests`, :mod:`probe.nettests.registry`),
one after another (their transfers would otherwise share, and bend, the line they measure),
and stores each family's measurements into the same round as they end, through the round's
:class:`~probe.rounds.roundstore.RoundStore` (``add_measurements``, off the event loop).

A family that cannot run is skipped and says why (not installed, its endpoint list missing
or invalid — VPN endpoints are the operator's to list —, the month's budget spent); a family
that fails with a bug is logged and skipped: neither loses the round's web measurements.

The data budget: ``tests.monthly_budget_bytes`` per calendar month (UTC), per machine (the
link is the machine's, whatever database it writes to), kept in a small JSON file in the data
directory (:class:`DataBudget`). Every family's use is counted (measured where the test says
what it moved, ``x_bytes_received``; else its registry estimate); once the month's budget is
spent, the *heavy* families (``throughput``) stop until the next month, and the throughput
test never downloads more than what is left.

The web list's categories: :func:`without_excluded` drops the URLs of the citizenlab
categories ``tests.excluded_categories`` names.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

from probe.errors import ConfigError
from probe.model import OONIMeasurement
from probe.nettests.base import Context
from probe.nettests.registry import FAMILIES, Family, FamilyInput
from probe.rounds.roundstore import RoundStore
from probe.rounds.settings import Settings
from probe.rounds.targets import Target
from probe.webconnectivity import MeasureConfig

log = logging.getLogger("probe.rounds.families")

USAGE_FILE: Final = "family-usage.json"


def without_excluded(targets: Sequence[Target], settings: Settings) -> tuple[Target, ...]:
    """*targets* without those of a category ``tests.excluded_categories`` names."""
    excluded = frozenset(settings.tests.excluded_categories)
    return tuple(t for t in targets if t.category_code not in excluded)


def selected(settings: Settings) -> list[Family]:
    """The families ``[tests]`` switches on, in its order."""
    return [FAMILIES[name] for name in settings.tests.enabled()]


class DataBudget:
    """This month's bytes, in a JSON file ``{"month": "YYYY-MM", "bytes": N}`` (UTC months).

    A missing or unreadable file is a month with nothing used yet: the budget errs on the
    side of measuring. Writes replace the file atomically.
    """

    def __init__(
        self, path: Path, monthly: int | None, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ):
        self.path = path
        self.monthly = monthly
        self._now = now

    def _month(self) -> str:
        return self._now().strftime("%Y-%m")

    def used(self) -> int:
        """Bytes counted this month."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if not isinstance(data, dict) or data.get("month") != self._month():
            return 0
        used = data.get("bytes")
        return used if isinstance(used, int) and used >= 0 else 0

    def remaining(self) -> int | None:
        """Bytes left this month; ``None``: no budget set."""
        return None if self.monthly is None else max(0, self.monthly - self.used())

    def add(self, n: int) -> None:
        """Count *n* more bytes this month (a write that fails is logged: the round goes on)."""
        if n <= 0:
            return
        text = json.dumps({"month": self._month(), "bytes": self.used() + n})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_suffix(".tmp")
            scratch.write_text(text, encoding="utf-8")
            os.replace(scratch, self.path)
        except OSError as exc:
            log.warning("cannot record the data budget's use in %s: %s", self.path, exc.strerror or exc)


def default_usage_path() -> Path:
    """``<data directory>/family-usage.json`` (the platform's, as the default database's)."""
    import platformdirs

    return platformdirs.user_data_path("reachprobe", appauthor=False) / USAGE_FILE


@dataclass(frozen=True, slots=True)
class FamiliesReport:
    """What :func:`run_families` did."""

    ran: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    """``(family, why)`` for each selected family that did not run."""
    n_measurements: int = 0
    bytes_used: int = 0


async def run_families(
    settings: Settings,
    config: MeasureConfig,
    *,
    store: RoundStore,
    round_id: int,
    started: datetime | None = None,
    budget: DataBudget | None = None,
) -> FamiliesReport:
    """Run the selected families and store their measurements into round *round_id*.

    Args:
        settings: ``[tests]`` says what runs and within which budget.
        config: the round's measurement configuration (after ``whoami``: its network).
        store: the round's store; written off the event loop, one batch per family.
        round_id: the round the measurements belong to.
        started: when the round began (the measurements' ``test_start_time``).
        budget: the month's data budget; default: the file in the data directory.

    Raises:
        StorageError: a batch cannot be written (the round's caller marks it interrupted).
        asyncio.CancelledError: the round was cancelled.
    """
    from probe.rounds.service import off_loop  # the round's one way to write (imported late: no cycle)

    tests = settings.tests
    budget = budget or DataBudget(default_usage_path(), tests.monthly_budget_bytes)
    context = Context(probe_asn=config.probe_asn, probe_cc=config.probe_cc, test_start_time=started)
    endpoints = _relative(tests.endpoints, settings)
    ran: list[str] = []
    skipped: list[tuple[str, str]] = []
    stored = used = 0
    for family in selected(settings):
        why = _cannot_run(family, budget)
        if why is not None:
            skipped.append((family.name, why))
            continue
        left = budget.remaining()
        given = FamilyInput(
            context=context,
            config=config,
            endpoints=endpoints,
            byte_budget=tests.throughput_round_bytes
            if left is None
            else min(tests.throughput_round_bytes, left),
            throughput_urls=tests.throughput_urls,
            throughput_reference_url=tests.throughput_reference_url,
        )
        try:
            measurements = await family.run(given)
        except ConfigError as exc:
            skipped.append((family.name, str(exc)))
            log.warning("%s not measured: %s", family.name, exc)
            continue
        except Exception as exc:  # a bug in one family must not cost the round (the web list is stored)
            skipped.append((family.name, f"failed: {type(exc).__name__}"))
            log.error("%s failed: %s: %s", family.name, type(exc).__name__, exc)
            continue
        cost = sum(bytes_of(m, family, len(measurements)) for m in measurements)
        budget.add(cost)
        used += cost
        if measurements:
            await off_loop(partial(store.add_measurements, round_id, measurements))
        ran.append(family.name)
        stored += len(measurements)
    return FamiliesReport(tuple(ran), tuple(skipped), stored, used)


def _cannot_run(family: Family, budget: DataBudget) -> str | None:
    if not family.available():
        return "not installed"
    left = budget.remaining()
    if family.heavy and left is not None and left <= 0:
        return "the month's data budget is spent"
    return None


def bytes_of(m: OONIMeasurement, family: Family, n: int) -> int:
    """What *m* moved: its ``x_bytes_received`` when the test counts it, else its share of the
    family's estimate."""
    keys: Any = m.document.get("test_keys")
    counted = keys.get("x_bytes_received") if isinstance(keys, dict) else None
    if isinstance(counted, int) and not isinstance(counted, bool):
        return counted
    return family.bytes_estimate // max(1, n)


def _relative(path: Path | None, settings: Settings) -> Path | None:
    if path is None or path.is_absolute() or settings.source is None:
        return path
    return settings.source.parent / path
