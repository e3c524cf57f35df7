"""The HTML report: every text from the data escaped, and the current state read from the outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from measurements.patterns.findings import Detection, Flag, SeriesState
from measurements.store.rows import FailingTarget
from measurements.views.report import render_html

T0 = datetime(2024, 2, 17, 9, tzinfo=UTC)
EVIL = "https://e.example/<script>alert(1)</script>&"


def test_text_is_escaped() -> None:
    flag = Flag(
        "blocking_onset", EVIL, "AS1", "PK", "http", "<b>m</b>", "<i>fp</i>", T0, T0, T0, 4, 0.99, None
    )
    found = Detection(
        flags=(flag,),
        series=(SeriesState(EVIL, "AS1", T0, ("http",), "<b>m</b>", T0),),
        n_rounds=2,
        n_measurements=2,
        first_round_at=T0 - timedelta(days=1),
        last_round_at=T0 + timedelta(days=1),
    )
    page = render_html(found, generated_at=T0)
    assert "<script>" not in page and "<b>m</b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in page
    assert page.count("<svg") == 1


def _latest(url: str, outcome: str, mechanism: str, confirmed: str | None = None) -> FailingTarget:
    return FailingTarget(url, "", "AS17557", "PK", T0, outcome, None, None, mechanism, confirmed, None)


def _state_rows(page: str) -> list[str]:
    table = page.split("<h2>Current state</h2>", 1)[1].split("</table>", 1)[0]
    return [line for line in table.splitlines() if line.startswith("<tr><td>")]


def test_current_state_is_the_latest_outcome_not_the_absence_of_a_flag() -> None:
    """Was: NXDOMAIN and refused targets, blocked since their first round (no onset), "reachable"."""
    urls = (
        "https://nx.example/",
        "https://refused.example/",
        "http://www.youtube.com/",
        "https://ok.example/",
    )
    found = Detection(
        series=tuple(SeriesState(url, "AS17557", T0, (), None, None) for url in urls),
        n_rounds=3,
        n_measurements=12,
        first_round_at=T0 - timedelta(hours=2),
        last_round_at=T0,
    )
    latest = [
        _latest(urls[0], "blocked.anomaly", "dns.nxdomain"),
        _latest(urls[1], "blocked.anomaly", "tcp.refused"),
        _latest(urls[2], "blocked.confirmed", "http.blockpage", "cp.b_nat_pak_isp_common_blockpage"),
        _latest(urls[3], "reachable", "ok"),
    ]
    page = render_html(found, generated_at=T0, latest=latest)
    measured = "<td></td><td>—</td><td>2024-02-17 09:00 UTC</td></tr>"
    assert _state_rows(page) == [
        '<tr><td>http://www.youtube.com/</td><td>AS17557</td><td><span class="blocked">blocked (confirmed: '
        f"cp.b_nat_pak_isp_common_blockpage)</span></td><td>http.blockpage</td>{measured}",
        '<tr><td>https://nx.example/</td><td>AS17557</td><td><span class="blocked">blocked (anomaly)</span>'
        f"</td><td>dns.nxdomain</td>{measured}",
        '<tr><td>https://ok.example/</td><td>AS17557</td><td><span class="ok">reachable</span></td>'
        f"<td>ok</td>{measured}",
        '<tr><td>https://refused.example/</td><td>AS17557</td><td><span class="blocked">blocked (anomaly)'
        f"</span></td><td>tcp.refused</td>{measured}",
    ]
