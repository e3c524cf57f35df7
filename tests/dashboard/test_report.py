"""``probe report``: the dashboard's views in one self-contained file, every text from the data escaped."""

from __future__ import annotations

import hashlib
import re
from base64 import b64encode
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from measurements.patterns.detect import detect_store
from measurements.store.store import open_store
from measurements.views.report import render_report
from probe.cli import main
from tests.dashboard.conftest import EVIL_URL, SCRIPT, console_errors

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _report(db_url: str) -> str:
    with open_store(db_url) as store:
        return render_report(store, detect_store(store), generated_at=T0)


def _now_rows(page: str) -> list[list[str]]:
    table = page.split('<section id="now">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\"row-[a-z]+\">(.*?)</tr>", table, re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in rows
    ]


def test_the_report_is_one_file_without_script_whose_policy_allows_only_its_stylesheet(
    synthetic_db: str,
) -> None:
    page = _report(synthetic_db)
    assert "<script" not in page and 'src="' not in page and '<link rel="stylesheet"' not in page
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'; img-src data:;" in page
    for section in ("now", "grid", "counts", "timeline", "events", "evidence"):
        assert f'<section id="{section}">' in page
    assert 'id="m-evidence-1"' in page and 'href="#m-evidence-1"' in page  # the blocked rows' evidence


def test_the_current_state_is_the_latest_outcome_blocked_first(synthetic_db: str) -> None:
    """What needs attention first (the confirmed block, then anomalies); the reachable are folded away."""
    last = "2024-03-01 00:10 UTC"  # the last round, with full evidence
    assert _now_rows(_report(synthetic_db)) == [
        ["blocked (confirmed: pk_pta_blockpage)", "https://www.dawn.com/ NEWS", "PTCL (AS17557)", last,
         "http.blockpage", last],
        ["blocked (anomaly)", "https://telegram.org/ COMM", "PTCL (AS17557)", last,
         "dns.nxdomain dns_nxdomain_error", last],
        ["blocked (anomaly)", "https://www.bbc.com/urdu NEWS", "Jazz mobile (AS45669)",
         "2024-02-29 22:03 UTC", "http.timeout generic_timeout_error", "2024-02-29 23:01 UTC"],  # noise
        ["blocked (anomaly)", "https://x.com/ GRP", "PTCL (AS17557)", last,
         "tls.reset.sni connection_reset", last],
    ]  # fmt: skip


def test_every_hostile_text_is_escaped(hostile_db: str) -> None:
    page = _report(hostile_db)
    assert "<script" not in page and "<img" not in page and "<svg onload" not in page
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in page
    assert str(markupsafe.escape(EVIL_URL)) in page  # its exact text, escaped
    assert (
        "https://evil.example/&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;?q=&#34;&gt;" in page
    )


def test_probe_report_writes_the_file_and_it_opens_cleanly_in_a_browser(
    synthetic_db: str, tmp_path: Path, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By

    out = tmp_path / "report.html"
    assert main(["report", "--db", synthetic_db, "-o", str(out)]) == 0
    assert re.fullmatch(rf"wrote {re.escape(str(out))} \(\d+ flags, \d+ events\)\n", capsys.readouterr().err)
    console_errors(browser)
    browser.get(out.as_uri())
    assert browser.title == "reachprobe report"
    assert (
        browser.find_element(By.CSS_SELECTOR, "#now .badge").text == "blocked (confirmed: pk_pta_blockpage)"
    )
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.timeline text.tick")]
    assert labels[0] == "08 Jan 2024" and "Feb" in " ".join(labels)
    # The inline stylesheet applied (its hash is in the page's policy): the header is dark.
    colour = browser.find_element(By.CSS_SELECTOR, "header.top").value_of_css_property("background-color")
    assert colour == "rgba(34, 48, 60, 1)"
    assert console_errors(browser) == [] and SCRIPT not in browser.page_source
