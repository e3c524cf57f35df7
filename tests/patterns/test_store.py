"""Flags through the store, on SQLite and PostgreSQL: same as in memory, idempotent, one snapshot."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from measurements.patterns.detect import detect, detect_store, update_flags
from measurements.patterns.flagstore import load_events, load_flags
from measurements.patterns.synthetic import SyntheticConfig, X, materialize, write
from measurements.store.store import open_store
from tests.storage.factories import BASE, KINDS, make_measurement, make_round

CONFIG = SyntheticConfig.small(days=36, outages=((6, 13, 6),), shutdown=(30, 0, 24), x_block=(12, 9, 25))


def test_stored_rounds_give_the_in_memory_flags_and_recompute_idempotently(store_url: str) -> None:
    with open_store(store_url) as store:
        n = write(store, CONFIG)
        expected = detect(*materialize(CONFIG))
        assert n == expected.n_measurements
        first = update_flags(store)
        assert first == expected
        stored = load_flags(store)
        assert tuple(stored) == expected.flags
        assert tuple(load_events(store)) == expected.events
        again = update_flags(store)
        assert again == first
        assert load_flags(store) == stored
        assert detect_store(store, batch=7) == expected


def test_filters(store_url: str) -> None:
    with open_store(store_url) as store:
        write(store, CONFIG)
        found = update_flags(store)
        x_flags = load_flags(store, target=X)
        assert x_flags == [f for f in found.flags if f.target == X]
        assert {f.probe_asn for f in x_flags} == {"AS17557", "AS9541", "AS23674"}
        assert load_flags(store, asn=9541) == [f for f in found.flags if f.probe_asn == "AS9541"]
        later = CONFIG.start + timedelta(days=20)
        assert load_flags(store, since=later) == [f for f in found.flags if f.last_evidence_at >= later]
        assert load_flags(store, since=CONFIG.start + timedelta(days=400)) == []


@pytest.mark.parametrize("between", ["rounds", "targets"], ids=["after-rounds", "after-targets"])
def test_a_round_committed_during_detection_is_not_half_seen(store_url: str, between: str) -> None:
    # A probe began a round before the detection; it commits, with new targets, between the
    # detection's reads (deterministically: right after the SELECT from *between* ran).
    with open_store(store_url) as store, open_store(store_url) as writer:
        for r in range(3):
            at = BASE + timedelta(hours=r)
            store.finish_round(store.begin_round(started_at=at), make_round(7, first=7 * r, at=at))
        at = BASE + timedelta(hours=3)
        late = writer.begin_round(started_at=at)
        new = [
            make_measurement(100 + i, kind=k, url=f"https://new{i}.example/", at=at)
            for i, k in enumerate(KINDS)
        ]
        before = detect_store(store)
        fired: list[str] = []

        def commit(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if not fired and statement.lstrip().startswith("SELECT") and f"FROM {between}" in statement:
                fired.append(statement)
                writer.finish_round(late, new)

        event.listen(Engine, "after_cursor_execute", commit)
        try:
            during = detect_store(store, batch=7)
        finally:
            event.remove(Engine, "after_cursor_execute", commit)
        assert fired, "the round was never committed"
        after = detect_store(store)
    # One snapshot, taken at the first read: the round is running there and has no measurements.
    assert [s.target for s in during.series if s.target.startswith("target #")] == []
    assert during == before
    assert after.n_measurements == before.n_measurements + len(new)
    assert {f"https://new{i}.example/" for i in range(len(KINDS))} <= {s.target for s in after.series}
