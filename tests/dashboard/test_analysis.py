"""The dashboard's detection: computed once, recomputed in the background only when the rounds changed."""

from __future__ import annotations

from pathlib import Path

from measurements.patterns.detect import detect_store
from measurements.patterns.findings import Detection
from measurements.store.installation import Installation
from measurements.store.store import Store, open_store
from measurements.views.dashboard.analysis import Analysis
from tests.storage.factories import BASE, make_round


def test_detection_is_rerun_only_when_the_rounds_changed(tmp_path: Path) -> None:
    now = [0.0]
    runs: list[int] = []

    def counting(store: Store) -> Detection:
        runs.append(1)
        return detect_store(store)

    with open_store(f"sqlite:///{tmp_path / 'm.sqlite3'}", installation=Installation.load(tmp_path)) as store:
        store.finish_round(store.begin_round(started_at=BASE), make_round(3))
        analysis = Analysis(store, check_s=30, detect=counting, clock=lambda: now[0])
        first = analysis.current()
        assert (first.n_rounds, first.n_measurements, len(runs)) == (1, 3, 1)
        now[0] = 100.0
        assert analysis.current() is first and len(runs) == 1  # looked: nothing changed
        store.finish_round(store.begin_round(started_at=BASE), make_round(2, first=3))
        now[0] = 110.0
        assert analysis.current() is first  # not due yet: no look
        now[0] = 131.0
        assert analysis.current() is first  # due: changed, so detection runs in the background
        analysis.wait()
        assert len(runs) == 2 and analysis.current().n_measurements == 5


def test_blocked_since_is_the_start_of_the_unbroken_blocked_run(tmp_path: Path) -> None:
    """Blocked, reachable, then blocked three times: since the first of those three."""
    from datetime import timedelta

    from measurements.views.dashboard import data
    from measurements.views.dashboard.filters import Filters
    from tests.storage.factories import make_measurement

    url = "https://x.example/"
    kinds = ("sni", "ok", "sni", "blockpage", "sni")  # a confirmed block is blocked too
    with open_store(f"sqlite:///{tmp_path / 'm.sqlite3'}", installation=Installation.load(tmp_path)) as store:
        for i, kind in enumerate(kinds):
            at = BASE + timedelta(hours=i)
            store.finish_round(
                store.begin_round(started_at=at), [make_measurement(i, kind=kind, url=url, at=at)]
            )
        with store.snapshot() as conn:
            (latest,) = data.latest(conn, Filters())
            assert data.run_start(conn, url, "AS17557", latest.measured_at) == BASE + timedelta(hours=2)
            assert data.run_start(conn, url, "AS17557", BASE) == BASE  # blocked since its first measurement
            assert data.run_start(conn, url, "AS17557", BASE + timedelta(hours=1)) is None  # not blocked then
