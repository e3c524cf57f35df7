"""Flags through the store, on SQLite and PostgreSQL: same as in memory, and idempotent."""

from __future__ import annotations

from datetime import timedelta

from measurements.flagstore import load_events, load_flags
from measurements.patterns import detect, detect_store, update_flags
from measurements.store import open_store
from measurements.synthetic import SyntheticConfig, X, materialize, write

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
