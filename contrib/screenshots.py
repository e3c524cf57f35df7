"""Screenshots of the dashboard for the README: the now, timeline, daily counts and measurement pages.

Usage (from the repository root; needs Debian's ``chromium`` and ``chromedriver``, and the ``dev``
extra for selenium)::

    .venv/bin/python contrib/screenshots.py            # writes docs/img/dashboard-*.png
    .venv/bin/python contrib/screenshots.py --out DIR

It stores the synthetic sixty days the dashboard's tests use (X blocked by SNI reset on three
networks, three evening outages of the social platforms, a day-long shutdown of the mobile
network, probe-offline gaps, and a last round with full evidence: a confirmed blockpage, an SNI
reset, an NXDOMAIN) in a throw-away directory, serves it with the real ``probe dashboard`` on
127.0.0.1, and photographs each page in headless chromium. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dashboard.conftest import chrome, running_dashboard  # noqa: E402 (after the path)
from tests.dashboard.synthstore import open_synthetic  # noqa: E402

SHOTS = (
    ("dashboard-now.png", "", 1400),
    ("dashboard-timeline.png", "timeline?since=2024-02-01&until=2024-03-01T01:00", 1400),
    ("dashboard-timeline-2days.png", "timeline?since=2024-02-10&until=2024-02-11&asn=AS17557", 1400),
    ("dashboard-counts.png", "counts", 1400),
    ("dashboard-measurement.png", "measurement/evidence-1", 1400),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="directory for the PNG files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "synthetic.sqlite3"
        open_synthetic(db).close()
        driver = chrome("--hide-scrollbars", "--force-device-scale-factor=1")
        try:
            with running_dashboard(f"sqlite:///{db}") as base:
                for name, path, width in SHOTS:
                    driver.set_window_size(width, 900)
                    driver.get(base + path)
                    height = driver.execute_script("return document.documentElement.scrollHeight")
                    driver.set_window_size(width, min(int(height), 2200))
                    target = args.out / name
                    driver.save_screenshot(str(target))
                    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
