"""Every scenario file is one test: build its lab, measure its targets, compare with its expectations.

Parametrised from the directory listing, so adding a file adds a test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.lab.network import PROBE_COUNTRY
from probe.lab.plan import ISP_ASN
from probe.lab.scenario import load_scenario, scenario_paths
from tests.lab.conftest import scenario_report

SCENARIOS = scenario_paths()


@pytest.mark.lab
@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario(path: Path, no_new_namespaces: None) -> None:
    report = scenario_report(path)
    problems = [f"{result.url}: {problem}" for result in report.results for problem in result.problems]
    assert not problems, "\n".join(problems)
    assert len(report.results) == len(report.scenario.targets) + len(report.scenario.nettests)
    for result in report.results:
        measurement = result.measurement or {}
        # The client's address is nowhere in what the probe records ...
        assert report.plan.client_ip not in json.dumps(measurement)
        # ... yet its network is, as the helper's whoami saw it (tests beyond websites ask no helper).
        if result.nettest is None and measurement["test_keys"]["control_failure"] is None:
            assert (measurement["probe_asn"], measurement["probe_cc"]) == (f"AS{ISP_ASN}", PROBE_COUNTRY)


def test_the_scenario_set() -> None:
    scenarios = [load_scenario(path) for path in SCENARIOS]
    names = {scenario.name for scenario in scenarios}
    assert len(scenarios) >= 15
    assert {
        "baseline",
        "pk-x-sni-reset-2024",
        "pk-surf-safely-http",
        "pk-nayatel-dns-blockpage",
        "pk-2024-01-20-evening-outage",
        "pk-mobile-shutdown",
        "pk-whatsapp-media-throttle-2024",
        "pk-control-blocked",
    } <= names
    baseline = next(scenario for scenario in scenarios if scenario.name == "baseline")
    assert not baseline.censorship
    assert all(target.expect["step"] == "none" for target in baseline.targets)
