"""Load OONI measurements with OONI's own data library; run inside an ``oonidata`` virtualenv.

    python oonidata_check.py load FILE.jsonl   # oonidata 0.3.0: dataclient.load_measurement
    python oonidata_check.py obs FILE.jsonl    # oonidata 0.2.3: dataformat.load_measurement, then
                                               # the test's observations (OONI's dispatch)

Prints one JSON list, an entry per line of FILE: ``{"ok": true, ...}`` or ``{"ok": false,
"error": ...}``. ``obs`` entries give the observations built per kind and the errors oonidata
only logs (they lose data silently, so they count as failures). oonidata's pins clash with
ours and with each other, hence one virtualenv per version (``tests/test_oonidata.py``); this
file imports nothing from reachprobe.

The observation stage needs OONI's fingerprint lists and IP→ASN databases, which oonidata
downloads; here they are offline stand-ins (the fingerprint CSVs with their real header and no
row, a NetinfoDB whose lookups find nothing): OONI's own code still runs on every value.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

BENIGN = re.compile(r"^multiple resolutions for the same IP ")
"""Logged whenever several lookups return one address (getaddrinfo + UDP + DoH, or each
redirect hop resolving again): OONI's own measurements log it too."""
STUB_NOISE = re.compile(r"^(Unable to locate ASN|Failed to lookup )")
"""What the offline NetinfoDB stand-in causes, not our data."""


def _error(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "oonidata" in f.filename]
    where = f" @ {frames[-1].filename.split('site-packages/')[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}"[:500] + where


def load(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from oonidata.dataclient import load_measurement  # 0.3.0

    results = []
    for m in lines:
        try:
            load_measurement(msmt=m)
            results.append({"ok": True})
        except Exception as exc:  # every failure is a finding, reported per line
            results.append({"ok": False, "error": _error(exc)})
    return results


def obs(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import csv
    from datetime import date

    from oonidata.dataformat import load_measurement  # 0.2.3
    from oonidata.fingerprintdb import FingerprintDB
    from oonidata.netinfo import NetinfoDB
    from oonidata.observations import (
        NettestObservation,
        make_dnscheck_observations,
        make_signal_observations,
        make_tor_observations,
        make_web_connectivity_observations,
    )

    # OONI's own dispatch (oonidata.processing.nettest_make_obs_map, not imported: it loads
    # the database drivers); a test without a maker there gets only its NettestObservation.
    makers = {
        "web_connectivity": make_web_connectivity_observations,
        "dnscheck": make_dnscheck_observations,
        "tor": make_tor_observations,
        "signal": make_signal_observations,
    }

    tmp = Path(tempfile.mkdtemp(prefix="oonidata-fp-"))
    (tmp / "blocking-fingerprints").mkdir()
    header = ["name", "pattern", "pattern_type", "location_found", "other_names", "exp_url",
              "confidence_no_fp", "source", "scope", "notes", "expected_countries"]  # fmt: skip
    for name in ("fingerprints_dns.csv", "fingerprints_http.csv"):
        with (tmp / "blocking-fingerprints" / name).open("w", newline="") as f:
            csv.writer(f).writerow(header)
    fingerprintdb = FingerprintDB(datadir=tmp, download=False)

    class _Reader:
        def get(self, ip: str) -> None:
            return None

    class OfflineNetinfoDB(NetinfoDB):  # type: ignore[misc]
        def __init__(self) -> None:
            self.as_org_map: dict[str, Any] = {}
            self.databases = {date(2000, 1, 1): "offline"}
            self.readers = {"offline": _Reader()}

    netinfodb = OfflineNetinfoDB()
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("oonidata")
    log.addHandler(Capture(level=logging.ERROR))
    log.propagate = False

    results: list[dict[str, Any]] = []
    for m in lines:
        records.clear()
        try:
            msmt = load_measurement(msmt=m)
            if msmt.test_keys is not None and not hasattr(msmt.test_keys, "client_resolver"):
                # oonidata 0.2.3's TorTestKeys lacks BaseTestKeys' client_resolver, which every
                # observation reads: no tor measurement (OONI's own included) gets one without it.
                msmt.test_keys.client_resolver = None
            NettestObservation.from_measurement(msmt, netinfodb)
            maker = makers.get(msmt.test_name)
            dns, tcp, tls, http = maker(msmt, fingerprintdb, netinfodb) if maker else ([], [], [], [])
        except Exception as exc:  # every failure is a finding, reported per line
            results.append({"ok": False, "error": _error(exc)})
            continue
        messages = {r.getMessage() for r in records}
        logged = sorted(t for t in messages if not BENIGN.match(t) and not STUB_NOISE.match(t))
        unparsed = [
            i
            for i, o in enumerate(tls)
            if o.certificate_chain_length and not o.end_entity_certificate_fingerprint
        ]
        if unparsed:
            logged.append(f"tls observations {unparsed}: peer certificates present but not parsed")
        counts = {"dns": len(dns), "tcp": len(tcp), "tls": len(tls), "http": len(http)}
        results.append({"ok": not logged, "observations": counts, "error": "; ".join(logged) or None})
    return results


def main(argv: list[str]) -> int:
    stage, path = argv
    lines = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    print(json.dumps({"load": load, "obs": obs}[stage](lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
