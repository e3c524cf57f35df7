"""The dashboard over a real round measured on loopback, and over measurements whose text is hostile.

A hostile network chooses titles, URLs and failure text: a measurement whose URL and page
title carry script must show that text, escaped, and run nothing — in the browser, where it
counts (``document.title`` unchanged, no ``<script>`` element in the page, no CSP violation
in the console).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from probe.cli import main
from probe.helper.app import HelperSettings
from probe.helper.geo import Geo
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from tests.dashboard.conftest import EVIL_URL, IMG, SCRIPT, console_errors, running_dashboard
from tests.servers.helper_server import running_helper
from tests.servers.http_server import http_server
from tests.servers.tcp_server import closed_port

pytestmark = pytest.mark.timeout(300)

BLOCKPAGE = (
    "<html><head><title>Surf Safely</title></head><body>This website is prohibited for viewership "
    "from within Pakistan.</body></html>"
)


@pytest.mark.parametrize("path", ["/", "/measurement/hostile-1", "/measurements", "/grid", "/timeline"])
def test_script_in_a_title_and_url_runs_nothing(browser: Any, hostile_db: str, path: str) -> None:
    from selenium.webdriver.common.by import By

    with running_dashboard(hostile_db) as url:
        console_errors(browser)
        browser.get(url.rstrip("/") + path)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert browser.title != "pwned" and browser.title.endswith("· reachprobe")
        assert (
            browser.execute_script("return document.querySelectorAll('script, img, iframe, object').length")
            == 0
        )
        assert browser.execute_script("return document.querySelectorAll('[onerror], [onload]').length") == 0
        assert console_errors(browser) == []
    if path in ("/", "/measurements"):
        assert EVIL_URL in body  # the text itself, shown as text
    if path == "/measurement/hostile-1":
        assert f"title: {SCRIPT}{IMG}" in body
        assert f"blocked (confirmed: fp{SCRIPT})" in body


def test_the_raw_html_escapes_every_hostile_text(hostile_db: str) -> None:
    import urllib.request

    with running_dashboard(hostile_db) as url:
        for path in ("", "measurement/hostile-1"):
            with urllib.request.urlopen(url + path, timeout=30) as response:
                html = response.read().decode()
            assert "<script" not in html and "<img" not in html and "<svg onload" not in html
            assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html


@pytest.fixture(scope="module")
def round_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``probe run --once`` over loopback: a page, a blockpage, a hostile title and a closed port."""
    tmp = tmp_path_factory.mktemp("round")
    helper = HelperSettings(
        config=HelperConfig(dns_timeout=10, tcp_timeout=10, tls_timeout=10, http_timeout=10),
        policy=AddressPolicy.allowing(("127.0.0.0/8",)),
        geo=Geo(asn_of=lambda ip: 64500, cc_of=lambda ip: "PK"),
    )
    with http_server() as site, running_helper(helper) as control:
        base = f"http://127.0.0.1:{site.port}"
        urls = [
            f"{base}/",
            f"{base}/echo?body={quote(BLOCKPAGE)}",
            f"{base}/echo?body={quote(f'<title>{SCRIPT}</title>')}",
            f"http://127.0.0.1:{closed_port()}/",
        ]
        (tmp / "targets.csv").write_text(
            "url,category_code,category_description,date_added,source,notes\n"
            + "".join(f"{u},NEWS,News Media,2024-02-17,test,\n" for u in urls)
        )
        database = tmp / "m.sqlite3"
        (tmp / "settings.toml").write_text(
            "[measure]\nresolvers = []\nallow_loopback = true\ntcp_timeout = 10\nhttp_timeout = 10\n"
            "[tests]\nwhatsapp = false\ntelegram = false\nsignal = false\n"
            "facebook_messenger = false\nhttp3 = false\n"
            f'[targets]\nlists = ["{tmp / "targets.csv"}"]\n[storage]\ndatabase_url = "sqlite:///{database}"\n'
            f'[control]\nurl = "{control}"\n[network]\npublic_networks = ["127.0.0.0/8"]\n'
        )
        assert main(["run", "--once", "--config", str(tmp / "settings.toml"), "--json"]) == 0
    yield f"sqlite:///{database}"


def test_a_loopback_round_in_the_browser(
    browser: Any, round_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By

    capsys.readouterr()
    with running_dashboard(round_db) as url:
        console_errors(browser)
        browser.get(url)
        rows = browser.find_elements(By.CSS_SELECTOR, "#now > table.state tbody tr")
        first = [td.text for td in rows[0].find_elements(By.TAG_NAME, "td")]
        assert first[0] == "blocked (confirmed: cp.b_nat_pak_isp_common_blockpage)"
        assert first[1].startswith("http://127.0.0.1:") and "/echo?body=" in first[1]
        assert first[2] == "AS64500"
        states = [r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows]
        assert states[1:] == ["site down"], states
        assert (
            browser.find_element(By.CSS_SELECTOR, "details summary").text
            == "2 target \N{MULTIPLICATION SIGN} network reachable"
        )
        rows[0].find_element(By.CSS_SELECTOR, "td:last-child a").click()
        steps = [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "table.steps tbody tr")
        ]
        assert [s[0] for s in steps] == ["TCP", "HTTP"]  # an IP address in the URL: no lookup
        assert steps[0][2:4] == ["connected", "connected"]  # the control's view beside the probe's
        assert steps[1][2:4] == ["200, 128 bytes, title: Surf Safely", "200, 128 bytes, title: Surf Safely"]
        raw = browser.find_element(By.CSS_SELECTOR, "details.raw pre").get_attribute("textContent")
        assert json.loads(raw)["test_keys"]["x_confirmed"] == "cp.b_nat_pak_isp_common_blockpage"
        for page in ("timeline", "counts", "events", "networks", "measurements"):
            browser.get(url + page)
            assert browser.find_elements(By.TAG_NAME, "footer")
        assert console_errors(browser) == []
