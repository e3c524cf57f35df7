"""Scenario files: loading, and one clear `file:key: problem` line for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.lab.scenario import ScenarioError, find_scenario, load_scenario, scenario_paths

GOOD = """
name = "demo"
description = "A demo."
timeout = 1.5

[[censorship]]
kind = "tls.reset.sni"
target = "x.com"

[[censorship]]
kind = "throttle"
target = "mmg.whatsapp.net"
rate = "32kbit"

[[targets]]
url = "https://x.com/"
step = "tls"
failure = "connection_reset"
dns_experiment_failure = "null"
blocking = "http-failure"
accessible = false

[[targets]]
url = "http://example.com/"
step = "none"
status = 200
title = "Example Domain"
"""


def _write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, GOOD))
    assert scenario.name == "demo" and scenario.timeout == 1.5
    assert [entry.describe() for entry in scenario.censorship] == [
        "tls.reset.sni x.com",
        "throttle mmg.whatsapp.net",
    ]
    assert scenario.censorship[1].params == {"rate": "32kbit"}
    assert scenario.targets[0].expect == {
        "step": "tls",
        "failure": "connection_reset",
        "dns_experiment_failure": None,
        "blocking": "http-failure",
        "accessible": False,
    }
    assert "mechanism" not in scenario.targets[0].expect
    assert scenario.targets[1].expect == {
        "step": "none",
        "failure": None,
        "title": "Example Domain",
        "status": 200,
    }


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('name = "demo"', 'name = "other"', "name: must equal the file name 'demo'"),
        ('description = "A demo."\n', "", "description: missing"),
        ("timeout = 1.5", "timeout = 0", "timeout: must be a number of seconds in (0, 60]"),
        ("timeout = 1.5", "timeout = 1.5\ncolour = 1", "colour: unknown key"),
        ('kind = "tls.reset.sni"', 'kind = "tls.magic"', "censorship[0].kind: unknown kind 'tls.magic'"),
        ('target = "x.com"\n', "", "censorship[0].target: required for tls.reset.sni"),
        ('rate = "32kbit"', 'rate = "fast"', "censorship[1].rate: must be a tc rate such as '64kbit'"),
        ('rate = "32kbit"', 'speed = "1"', "censorship[1].speed: unknown key"),
        (
            'url = "https://x.com/"',
            'url = "ftp://x.com/"',
            "targets[0].url: not an http(s) URL: 'ftp://x.com/'",
        ),
        ('step = "tls"', 'step = "quic"', "targets[0].step: must be one of none, dns, tcp, tls, http"),
        ('failure = "connection_reset"\n', "", "targets[0].failure: required when step = 'tls'"),
        ("status = 200", "status = 999", "targets[1].status: must be an HTTP status code"),
        (
            "accessible = false",
            "accessible = 3",
            'targets[0].accessible: must be true, false, a string or "null"',
        ),
        ('title = "Example Domain"', "title = 4", "targets[1].title: must be a non-empty string"),
        (
            "accessible = false",
            'accessible = false\nmechanism = "tls.sni_reset"',
            'targets[0].mechanism: must be "null" or one of dns.nxdomain, dns.timeout, ',
        ),
    ],
)
def test_one_line_errors(tmp_path: Path, old: str, new: str, problem: str) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{problem}") or message == f"{path}:{problem}"


def test_target_kind_mismatch(tmp_path: Path) -> None:
    text = GOOD.replace(
        'kind = "throttle"\ntarget = "mmg.whatsapp.net"', 'kind = "dns.nxdomain"\ntarget = "1.2.3.4"'
    )
    text = text.replace('rate = "32kbit"\n', "")
    with pytest.raises(
        ScenarioError, match=r"demo.toml:censorship\[1\].target: dns.nxdomain needs a lab domain"
    ):
        load_scenario(_write(tmp_path, text))


def test_kinds_without_target_refuse_one(tmp_path: Path) -> None:
    text = GOOD.replace('kind = "tls.reset.sni"', 'kind = "shutdown"')
    with pytest.raises(ScenarioError, match=r"censorship\[0\].target: shutdown takes no target"):
        load_scenario(_write(tmp_path, text))


def test_bad_toml_and_missing_targets(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"demo.toml: invalid TOML"):
        load_scenario(_write(tmp_path, "name = "))
    with pytest.raises(ScenarioError, match=r"demo.toml:targets: at least one is required"):
        load_scenario(_write(tmp_path, 'name = "demo"\ndescription = "x"\n'))


def test_find_scenario() -> None:
    assert find_scenario("baseline").name == "baseline.toml"
    with pytest.raises(ScenarioError, match=r"^nope: unknown scenario \(known: .*baseline"):
        find_scenario("nope")
    with pytest.raises(ScenarioError, match=r"^/no/such.toml: no such scenario file$"):
        find_scenario("/no/such.toml")


@pytest.mark.parametrize("path", scenario_paths(), ids=lambda path: path.stem)
def test_every_shipped_scenario_is_valid(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.description and (scenario.targets or scenario.nettests)


@pytest.mark.parametrize("mechanism", ["tls.reset.sni", "server.block", "null"])
def test_a_mechanism_expectation_is_of_the_vocabulary(tmp_path: Path, mechanism: str) -> None:
    text = GOOD.replace("accessible = false", f'accessible = false\nmechanism = "{mechanism}"', 1)
    expect = load_scenario(_write(tmp_path, text)).targets[0].expect
    assert expect["mechanism"] == (None if mechanism == "null" else mechanism)
