"""Fixtures for the dashboard: synthetic and loopback stores, the real ``probe dashboard`` serving
them on 127.0.0.1, and Debian's chromium driven by selenium through /usr/bin/chromedriver."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from measurements.store.installation import Installation
from measurements.store.store import open_store
from tests.dashboard.synthstore import open_synthetic
from tests.storage.factories import BASE, make_measurement

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SERVING = re.compile(r"serving on (http://127\.0\.0\.1:\d+/)")
SCRIPT = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
EVIL_URL = f'https://evil.example/{SCRIPT}?q="><svg onload=alert(1)>'


@contextmanager
def running_dashboard(db_url: str, *extra: str) -> Iterator[str]:
    """``probe dashboard --db DB_URL --listen 127.0.0.1:0`` in a child process; yields its base URL."""
    command = [
        sys.executable,
        "-m",
        "probe.cli",
        "dashboard",
        "--db",
        db_url,
        "--listen",
        "127.0.0.1:0",
        *extra,
    ]
    child = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL
    )
    assert child.stderr is not None
    lines: list[str] = []
    drain: threading.Thread | None = None
    try:
        for line in child.stderr:
            lines.append(line)
            if match := SERVING.search(line):
                break
        else:
            raise AssertionError(f"probe dashboard did not start: {''.join(lines)}")
        drain = threading.Thread(target=lambda: lines.extend(child.stderr or ()), daemon=True)
        drain.start()
        yield match.group(1)
    finally:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if drain is not None:
            drain.join(5)
        child.stderr.close()
    assert child.returncode == 0, "".join(lines)


@pytest.fixture(scope="session")
def synthetic_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Sixty synthetic days on four networks (X blocked, outages, a shutdown, offline gaps), as stored."""
    db = tmp_path_factory.mktemp("synthetic") / "synthetic.sqlite3"
    open_synthetic(db).close()
    return f"sqlite:///{db}"


@pytest.fixture(scope="session")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with one blocked measurement whose URL, page title and body carry script."""
    db = tmp_path_factory.mktemp("hostile") / "hostile.sqlite3"
    base = make_measurement(0, kind="blockpage", url=EVIL_URL, network_name=f"Evil ISP {IMG}")
    keys = base.test_keys
    (request,) = keys.requests
    assert request.response is not None
    response = dataclasses.replace(
        request.response, title=f"{SCRIPT}{IMG}", body=f"<title>{SCRIPT}</title>".encode()
    )
    hostile = dataclasses.replace(
        base,
        measurement_uid="hostile-1",
        test_keys=dataclasses.replace(
            keys, requests=(dataclasses.replace(request, response=response),), confirmed=f"fp{SCRIPT}"
        ),
    )
    with open_store(f"sqlite:///{db}", installation=Installation.load(db.parent)) as store:
        store.finish_round(store.begin_round(started_at=BASE, probe_asn="AS17557", probe_cc="PK"), [hostile])
    return f"sqlite:///{db}"


@pytest.fixture(scope="session")
def synthetic_dashboard(synthetic_db: str) -> Iterator[str]:
    with running_dashboard(synthetic_db) as url:
        yield url


def chrome(*arguments: str) -> Any:
    """Headless Debian chromium through /usr/bin/chromedriver (selenium downloads nothing), console logged."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        *arguments,
    ):
        options.add_argument(argument)  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless chromium (Debian's), with the browser console logged; skipped when it is not installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()) or shutil.which(str(CHROMEDRIVER)) is None:
        pytest.skip("Debian's chromium and chromedriver are not installed (make system-deps installs them)")
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
    driver = chrome("--window-size=1400,1000")
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The browser console's errors and warnings since the last call (CSP violations are errors)."""
    return [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")
    ]
