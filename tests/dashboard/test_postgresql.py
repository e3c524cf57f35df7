"""The dashboard over the collector's PostgreSQL: the same pages, the same order, the same downloads."""

from __future__ import annotations

import csv
import io
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from measurements.patterns.synthetic import SyntheticConfig
from measurements.store.installation import Installation
from measurements.store.store import open_store
from tests.dashboard.conftest import running_dashboard
from tests.dashboard.synthstore import write_store

pytestmark = pytest.mark.timeout(300)
PAGES = ("", "grid", "timeline", "counts", "events", "measurements", "networks", "measurement/evidence-1")


@pytest.fixture(scope="module")
def pg_dashboard(pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = pg_cluster.database("dash")
    url = pg_cluster.url(name)
    installation = Installation.load(tmp_path_factory.mktemp("installation"))
    with open_store(url, installation=installation) as store:
        write_store(store, SyntheticConfig.small(days=21, x_block=(5, 9, None), outages=((3, 13, 6),),
                                                 shutdown=(10, 0, 24), offline_gaps=1))  # fmt: skip
    with running_dashboard(url) as base:
        yield base
    pg_cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.status == 200
        return str(response.read().decode())


@pytest.mark.parametrize("page", PAGES)
def test_every_page_over_postgresql(pg_dashboard: str, page: str) -> None:
    assert "</footer>" in _get(pg_dashboard + page)


def test_the_blocked_come_first_and_the_downloads_match_over_postgresql(pg_dashboard: str) -> None:
    page = _get(pg_dashboard)
    table = page.split('<section id="now">', 1)[1].split("</table>", 1)[0]
    assert table.index("blocked (confirmed: pk_pta_blockpage)") < table.index("blocked (anomaly)")
    assert page.count('class="row-ok"') == 0  # the reachable are folded away
    counts = _get(pg_dashboard + "counts")
    assert "blocked (confirmed)" in counts and "hover a bar for its day" in counts
    rows = list(csv.DictReader(io.StringIO(_get(pg_dashboard + "download.csv?outcome=blocked.confirmed"))))
    assert [(r["measurement_uid"], r["input"]) for r in rows] == [("evidence-1", "https://www.dawn.com/")]
    timeline = _get(pg_dashboard + "timeline")
    assert 'class="shutdown"' in timeline and 'class="blocked"' in timeline and 'class="offline"' in timeline
