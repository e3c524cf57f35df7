"""The HTML report escapes every text taken from the data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from measurements.findings import Detection, Flag, SeriesState
from measurements.report import render_html

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
