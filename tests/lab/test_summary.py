"""The lab's summary for volunteers (no privileges): outcomes from a scenario's heartbeat, exact lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from probe.cli.lab import render_summary
from probe.lab.outcome import network_up, outcome
from probe.lab.plan import LabPlan
from probe.lab.runner import Report, TargetResult, with_outcomes
from probe.lab.scenario import ScenarioError, find_scenario, load_scenario
from probe.outcome import Outcome

PLAN = LabPlan("rp000001")


def measurement(
    url: str,
    *,
    connected: bool,
    mechanism: str,
    confirmed: str | None = None,
    blocking: object = False,
    accessible: object = True,
    control_failure: str | None = "dns_temporary_failure",
) -> dict[str, Any]:
    """A ``probe measure --json`` document reduced to what the outcome reads."""
    connects = [{"ip": "10.21.3.80", "port": 80, "status": {"success": connected, "failure": None}}]
    return {
        "input": url,
        "test_keys": {
            "tcp_connect": connects if connected else [],
            "blocking": blocking,
            "accessible": accessible,
            "x_mechanism": mechanism,
            "x_confirmed": confirmed,
            "control_failure": control_failure,
        },
    }


SHUTDOWN = [
    measurement("https://x.com/", connected=False, mechanism="dns.timeout"),
    measurement("https://en.wikipedia.org/", connected=False, mechanism="dns.timeout"),
    # The ISP's own block-page server still answers: the censor's, not the network beyond it.
    measurement(
        "http://blockpage.isp.lab/",
        connected=True,
        mechanism="dns.blockpage",
        confirmed="lab.isp_dns_blockpage",
        blocking=None,
        accessible=None,
    ),
]


def test_a_shutdown_reads_network_shut_down_never_reachable() -> None:
    """Was: ``blocking false``, ``accessible true`` (rule 5.1a) and nothing else to read."""
    up = network_up(SHUTDOWN)
    assert up is False
    assert [outcome(m, up=up) for m in SHUTDOWN] == [
        Outcome.SHUTDOWN,
        Outcome.SHUTDOWN,
        Outcome.BLOCKED_CONFIRMED,
    ]


def test_one_connect_beyond_the_censor_means_the_network_is_up() -> None:
    fine = measurement("https://x.com/", connected=True, mechanism="ok", control_failure=None)
    assert network_up([*SHUTDOWN, fine]) is True
    assert network_up([]) is None
    assert outcome(SHUTDOWN[0], up=True) is Outcome.NO_VERDICT_CONTROL


def _report(*results: TargetResult) -> Report:
    scenario = load_scenario(find_scenario("pk-mobile-shutdown"))
    return Report(scenario=scenario, plan=PLAN, results=list(results))


def test_the_summary_is_one_verdict_per_target(tmp_path: Path) -> None:
    expected = {"step": "dns", "outcome": "shutdown", "mechanism": "dns.timeout"}
    results = [
        TargetResult(m["input"], dict(expected), {"step": "dns", "mechanism": m["test_keys"]["x_mechanism"],
                     "confirmed": m["test_keys"]["x_confirmed"]}, [], 1.0, m)
        for m in SHUTDOWN
    ]  # fmt: skip
    with_outcomes(results)
    console = Console(width=150, record=True, highlight=False)
    render_summary(_report(*results), console)
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert lines[0].startswith("pk-mobile-shutdown (rp000001): Mobile-data shutdown")
    assert lines[1:] == [
        "censorship: shutdown",
        "target                     verdict                                     how",
        "https://x.com/             network shut down                           dns.timeout    as expected",
        "https://en.wikipedia.org/  network shut down                           dns.timeout    as expected",
        "http://blockpage.isp.lab/  blocked (confirmed: lab.isp_dns_blockpage)  dns.blockpage  MISMATCH",
        "1 target(s) differ (probe lab run --verbose shows what differs) (3 measured)",
    ]
    assert results[2].problems == [
        "outcome: expected 'shutdown', observed 'blocked.confirmed'",
        "mechanism: expected 'dns.timeout', observed 'dns.blockpage'",
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("tls.sni_reset", "tls.reset.sni"),
        ("tls.sni_drop", "tls.drop.sni"),
        ("http.host_reset", "http.reset.host"),
    ],
)
def test_old_kind_names_say_their_new_name(tmp_path: Path, old: str, new: str) -> None:
    """One vocabulary: a kind has the name of the mechanism it produces."""
    path = tmp_path / "old.toml"
    path.write_text(
        f'name = "old"\ndescription = "x"\n[[censorship]]\nkind = "{old}"\ntarget = "x.com"\n'
        '[[targets]]\nurl = "https://x.com/"\nstep = "none"\n',
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}:censorship[0].kind: {old!r} is now {new!r} (the mechanism's name)"


def test_an_expected_outcome_must_be_one_of_the_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'name = "bad"\ndescription = "x"\n[[targets]]\nurl = "https://x.com/"\nstep = "none"\n'
        'outcome = "fine"\n',
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError, match=r"targets\[0\]\.outcome: must be one of blocked\.confirmed, "):
        load_scenario(path)


def test_every_shipped_target_expects_an_outcome() -> None:
    from probe.lab.scenario import scenario_paths

    for path in scenario_paths():
        for target in load_scenario(path).targets:
            assert "outcome" in target.expect, f"{path.name}: {target.url}"
