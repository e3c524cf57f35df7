"""Stores with measurements to upload: real Web Connectivity measurements, rounds as a probe stores them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from measurements.store.store import Store
from probe.model import Measurement
from probe.rounds.settings import Upload
from tests.storage.factories import make_round

RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
"""Measurements a few hours old: within any collector's time window."""


def fill(
    store: Store,
    *,
    rounds: int,
    per_round: int,
    first: int = 0,
    asn: str = "AS17557",
    finish: bool = True,
    at: datetime = RECENT,
) -> list[Measurement]:
    """Store *rounds* rounds of *per_round* measurements (uids numbered from *first*)."""
    stored: list[Measurement] = []
    for r in range(rounds):
        start = at + timedelta(minutes=10 * r)
        batch = make_round(per_round, first=first + r * per_round, at=start, asn=asn)
        round_id = store.begin_round(started_at=start, probe_asn=asn, probe_cc="PK", n_targets=per_round)
        if finish:
            store.finish_round(round_id, batch)
        else:
            store.add_measurements(round_id, batch)
        stored.extend(batch)
    return stored


def settings(url: str | None, **changes: object) -> Upload:
    """Upload settings for a test collector at *url*."""
    values: dict[str, object] = {"collector_url": url, "batch_size": 20, "timeout": 5.0}
    values.update(changes)
    return Upload.model_validate(values)


def now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


HOLD_UPLOAD_LOCK = """
import sys, time
from measurements.store.store import open_store
with open_store(sys.argv[1]) as store, store.lock_uploads() as lock:
    assert lock is not None
    print("held", flush=True)
    time.sleep(60)
"""
"""Run with ``python -c`` and a database URL: hold that store's upload lock (as a ``probe
upload`` in progress does) until killed; prints ``held`` once it holds it."""
