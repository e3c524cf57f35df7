"""Every page in a real headless browser (Debian's chromium): no console error, and what a person sees.

Served by the real ``probe dashboard`` on 127.0.0.1 over a synthetic store (sixty days: X
blocked by SNI, three evening outages, a shutdown, offline gaps; a last round with full
evidence, a confirmed blockpage among it), over a hostile measurement, and over a round
measured on loopback.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest

from tests.dashboard.conftest import console_errors

pytestmark = pytest.mark.timeout(300)
X_BLOCKED = ("PTCL (AS17557)", "Cybernet (AS9541)", "Nayatel (AS23674)")

PAGES = (
    "/",
    "/timeline",
    "/counts",
    "/events",
    "/measurements",
    "/networks",
    "/grid",
    "/measurement/evidence-1",
    "/timeline?since=2024-02-10&until=2024-02-11",
    "/?asn=AS17557&category=GRP",
    "/measurements?outcome=blocked&target=https%3A%2F%2Fx.com%2F",
)


def _open(driver: Any, url: str) -> Any:
    from selenium.webdriver.common.by import By

    console_errors(driver)  # drop what an earlier page logged
    driver.get(url)
    assert driver.find_element(By.TAG_NAME, "footer")  # the page rendered to its end
    return By


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_without_a_console_error(
    browser: Any, synthetic_dashboard: str, path: str
) -> None:
    By = _open(browser, synthetic_dashboard.rstrip("/") + path)
    assert browser.title.endswith("· reachprobe")
    assert browser.find_elements(By.TAG_NAME, "h2")
    assert browser.execute_script("return document.scripts.length") == 0
    assert console_errors(browser) == []


def test_the_now_page_lists_the_blocked_first(browser: Any, synthetic_dashboard: str) -> None:
    By = _open(browser, synthetic_dashboard)
    rows = browser.find_elements(By.CSS_SELECTOR, "#now > table.state tbody tr")
    states = [r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows]
    assert states[0] == "blocked (confirmed: pk_pta_blockpage)"
    assert rows[0].find_elements(By.TAG_NAME, "td")[1].text == "https://www.dawn.com/ NEWS"
    assert rows[0].find_elements(By.TAG_NAME, "td")[2].text == "PTCL (AS17557)"
    ranks = [0 if s.startswith("blocked (confirmed") else 1 if s.startswith("blocked") else 2 for s in states]
    assert ranks == sorted(ranks) and 1 in ranks
    assert "reachable" not in states  # folded away below
    assert re.fullmatch(
        r"\d+ target \N{MULTIPLICATION SIGN} network reachable",
        browser.find_element(By.CSS_SELECTOR, "details summary").text,
    )
    grid = browser.find_elements(By.CSS_SELECTOR, "#grid thead th")
    assert [th.text for th in grid] == [
        "Target",
        "Cybernet (AS9541)",
        "PTCL (AS17557)",
        "Nayatel (AS23674)",
        "Jazz mobile (AS45669)",
    ]


def test_the_timeline_has_a_dated_axis_with_day_and_hour_ticks(
    browser: Any, synthetic_dashboard: str, synthetic_db: str
) -> None:
    By = _open(browser, synthetic_dashboard.rstrip("/") + "/timeline?since=2024-01-01&until=2024-03-01")
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.timeline text.tick")]
    assert labels[0] == "01 Jan 2024"  # a Monday (weeks start on Mondays), with its year
    assert all(re.fullmatch(r"\d\d [A-Z][a-z]{2}( 2024)?", label) for label in labels), labels
    kinds = {
        r.get_attribute("class") for r in browser.find_elements(By.CSS_SELECTOR, "svg.timeline rect[class]")
    }
    assert kinds == {"reachable", "blocked", "shutdown", "offline"}
    blocked = browser.find_element(By.CSS_SELECTOR, "svg.timeline a rect.blocked title")
    assert re.search(
        r"blocked at (TLS|TCP) .* from 2024-\d\d-\d\d \d\d:\d\d UTC", blocked.get_attribute("textContent")
    )

    _open(browser, synthetic_dashboard.rstrip("/") + "/timeline?since=2024-02-10&until=2024-02-11")
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.timeline text.tick")]
    assert labels[0] == "10 Feb 2024" and "Sun 11 Feb" in labels
    assert {"06:00", "12:00", "18:00"} <= set(labels), labels
    ticks = browser.find_elements(By.CSS_SELECTOR, "svg.timeline a rect.measurement")
    titles = [t.find_element(By.TAG_NAME, "title").get_attribute("textContent") for t in ticks]
    with sqlite3.connect(synthetic_db.removeprefix("sqlite:///")) as db:
        blocked, sni_blocked = db.execute(
            "SELECT count(*), sum(input = 'https://x.com/' AND mechanism = 'tls.reset.sni') "
            "FROM measurements "
            "WHERE outcome LIKE 'blocked.%' AND measured_at >= '2024-02-10' AND measured_at < '2024-02-12'"
        ).fetchone()
    assert len(titles) == blocked  # every blocked measurement of the two days, one tick each
    sni = [t for t in titles if t.startswith("https://x.com/") and "(tls.reset.sni)" in t]
    assert {t.split(": ")[0] for t in sni} == {f"https://x.com/ on {n}" for n in X_BLOCKED}
    assert len(sni) == sni_blocked > 90  # hourly on three networks until the 11th at 09:00, but when offline
    assert re.fullmatch(
        r"https://x\.com/ on .+: blocked \(anomaly\) \(tls\.reset\.sni\) at 2024-02-10 00:0\d UTC", sni[0]
    )
    assert ticks[0].find_element(By.XPATH, "..").get_dom_attribute("href").startswith("/measurement/")
    assert console_errors(browser) == []


def test_the_measurement_page_shows_each_step_beside_the_control(
    browser: Any, synthetic_dashboard: str
) -> None:
    By = _open(browser, synthetic_dashboard.rstrip("/") + "/measurement/evidence-1")
    assert browser.find_element(By.CSS_SELECTOR, "h2 .badge").text == "blocked (confirmed: pk_pta_blockpage)"
    steps = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(By.CSS_SELECTOR, "table.steps tbody tr")
    ]
    assert [s[0] for s in steps] == ["DNS", "TCP", "TCP", "TLS", "HTTP"]
    assert (
        steps[0][2] == "93.184.215.14, 2606:2800:21f:cb07:6820:80da:af6b:8b2c"
        and steps[0][3] == "93.184.215.14"
    )
    assert steps[1][2] == "✗ network_unreachable" and steps[1][3] == "—"
    assert steps[2][2] == "connected" and steps[2][3] == "connected"
    assert (
        steps[4][2] == "200, 29 bytes, title: Blocked by PTA"
        and steps[4][3] == "200, 22 bytes, title: Example"
    )
    links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "p.links a")}
    assert links["download the OONI JSON"].endswith("/measurement/evidence-1.json")
    assert links["OONI Explorer (same URL, network and days)"].startswith(
        "https://explorer.ooni.org/search?input=https"
    )
