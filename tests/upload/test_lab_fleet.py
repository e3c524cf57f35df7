"""The lab proof: two volunteers on two ISPs (AS64500, AS64510) upload to a collector in the world,
and ``probe flags`` over the collector's database reports the block on both networks, national.

Both ISPs reset TLS handshakes naming x.com (the 2024 pattern); example.com stays reachable.
Each volunteer measures five rounds (``probe run``, enough for the change-point detector's
onset), then uploads them (``probe upload``, as cron would).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from probe.lab.censor import Censorship
from probe.lab.fleet import Fleet
from tests.lab.conftest import lab_unavailable

ROUNDS = 5
BLOCKED, REACHABLE = "https://x.com/", "https://example.com/"

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
    pytest.mark.timeout(300),
]


def test_two_isps_upload_and_the_block_is_national(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from probe.cli import main

    with Fleet.create(tmp_path, [Censorship("tls.reset.sni", "x.com")]) as fleet:
        fleet.start()
        homes = [tmp_path / "volunteer0", tmp_path / "volunteer1"]
        dbs = [f"sqlite:///{tmp_path / f'probe{i}.sqlite3'}" for i in (0, 1)]
        config = ("--config", str(fleet.settings))

        def volunteer(i: int) -> list[str]:
            problems = []
            for _ in range(ROUNDS):
                measure = ("run", "--input", BLOCKED, "--input", REACHABLE, *config, "--db", dbs[i], "--json")
                done = fleet.probe(i, *measure, home=homes[i])
                if done.returncode != 0:
                    problems.append(f"probe {i} run: {done.returncode} {done.stderr[-800:]}")
                    continue
                results = {r["url"]: r for r in json.loads(done.stdout)["results"]}
                assert results[BLOCKED]["mechanism"] == "tls.reset.sni", results
            done = fleet.probe(i, "upload", *config, "--db", dbs[i], home=homes[i])
            if done.returncode != 0:
                problems.append(f"probe {i} upload: {done.returncode} {done.stderr[-800:]}")
            problems.append(done.stdout)
            return problems

        with ThreadPoolExecutor(2) as pool:
            said = list(pool.map(volunteer, (0, 1)))
        for lines in said:
            assert lines[:-1] == []
            assert lines[-1].startswith(f"uploaded {2 * ROUNDS} measurement(s) to {fleet.collector_url} "
                                        f"in {ROUNDS} report(s); 0 not uploaded yet")  # fmt: skip
        collector_db = fleet.collector_db
        asns = fleet.asns
        volunteers = (fleet.first.plan.client_ip, fleet.second.client_ip)

    # What reached the collector names each volunteer's network, never its address.
    with contextlib.closing(sqlite3.connect(collector_db.removeprefix("sqlite:///"))) as db:
        bodies = [json.loads(body) for (body,) in db.execute("SELECT body FROM measurements")]
        networks = sorted(db.execute("SELECT probe_asn, count(*) FROM measurements GROUP BY probe_asn"))
    assert networks == [(asns[0], 2 * ROUNDS), (asns[1], 2 * ROUNDS)]
    assert {doc["probe_ip"] for doc in bodies} == {"127.0.0.1"}
    assert not [ip for ip in volunteers for doc in bodies if ip in json.dumps(doc)]

    assert main(["flags", "--db", collector_db, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    onsets = {(f["target"], f["probe_asn"]) for f in found["flags"] if f["kind"] == "blocking_onset"}
    assert onsets == {(BLOCKED, asns[0]), (BLOCKED, asns[1])}
    (event,) = found["events"]
    assert event["scope"] == "national"
    assert sorted(event["asns"]) == sorted(asns)
