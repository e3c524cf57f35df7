"""``probe forensics`` in the lab: an injected SNI reset told from the server's own, and localised.

One lab for the module: the ISP router resets ClientHellos naming x.com (``tls.reset.sni``, the
pk-x-sni-reset-2024 scenario) and answers SYNs to www.tiktok.com with a RST (``tcp.reset``);
in the world, telegram.org's own host resets ClientHellos naming it (an iptables rule in the
world namespace: the end host's kernel sends that RST); en.wikipedia.org is untouched.

    client ──access── isp (hop 1: router + censor) ──transit── world (hop 2: the servers)

The command runs in the client namespace as ``probe`` will run it, and its JSON is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.lab.censor import Censorship
from probe.lab.network import Lab
from probe.lab.processes import child_env
from probe.lab.topology import run
from tests.lab.conftest import lab_namespaces, lab_unavailable

pytestmark = pytest.mark.lab

RUN_CLI = "import sys; from probe.cli import main; sys.exit(main(sys.argv[1:]))"
CENSORSHIP = (Censorship("tls.reset.sni", "x.com"), Censorship("tcp.reset", "www.tiktok.com"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The module's lab, torn down whatever happens (and checked for leftovers)."""
    reason = lab_unavailable()  # module fixtures run before the per-test skip in conftest
    if reason:
        pytest.skip(reason)
    lab = Lab.create(Path(tmp_path_factory.mktemp("forensics-lab")))
    try:
        lab.start(CENSORSHIP)
        world_resets = (
            "-p tcp --dport 443 -m string --algo bm --string telegram.org -j REJECT --reject-with tcp-reset"
        )
        run(["ip", "netns", "exec", lab.plan.ns("world"), "iptables", "-A", "INPUT", *world_resets.split()])
        yield lab
    finally:
        lab.stop()
    # Only this lab's own names: other lab runs may come and go on the machine meanwhile.
    leaked = set(lab.plan.namespaces) & lab_namespaces()
    assert not leaked, f"leaked namespaces: {sorted(leaked)}"


def forensics(lab: Lab, url: str, *args: str) -> dict[str, Any]:
    """``probe forensics URL --json`` in the client namespace; the parsed report."""
    command = ["ip", "netns", "exec", lab.plan.ns("client"), sys.executable, "-c", RUN_CLI]
    command += ["forensics", url, "--json", "--max-hops", "4", "--timeout", "2", "--hop-wait", "0.5", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=120, check=False)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert lab.plan.client_ip not in done.stdout  # the volunteer's address is never recorded
    return report


def _resets(report: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    return [
        (reset["flags"], reset["ttl"], reset["hops_estimate"], reset["phase"])
        for reset in report["rst_forensics"]["resets"]
    ]


def _hops(report: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    return [(probe["ttl"], probe["outcome"], probe["router"]) for probe in report["localisation"]["probes"]]


def test_sni_reset_by_the_isp_is_injected_and_localised_at_the_isp(lab: Lab) -> None:
    report = forensics(lab, "https://x.com/")  # resolved by the system resolver, as a user would
    isp = lab.plan.isp_access_ip
    rst = report["rst_forensics"]
    assert report["ip"] == lab.plan.site_ip("x.com")
    assert (rst["verdict"], rst["signs"], rst["failure"]) == (
        "injected",
        ["ttl_mismatch"],
        "connection_reset",
    )
    # The server is two hops away (TTL 64 - 1 router); the RST comes from hop 1 (TTL 64, unrouted).
    assert (rst["syn_ack"]["ttl"], rst["syn_ack"]["hops_estimate"]) == (63, 2)
    assert _resets(report) == [("R", 64, 1, "after_client_hello")]
    located = report["localisation"]
    # TTL 1 dies at the ISP router (time exceeded); TTL 2 crosses it and meets its FORWARD rule.
    assert _hops(report) == [(1, "time_exceeded", isp), (2, "reset", None)]
    assert {
        key: located[key] for key in ("blocking_ttl", "reset_source", "device_hop", "device_address")
    } == {
        "blocking_ttl": 2,
        "reset_source": "injected",
        "device_hop": 1,
        "device_address": isp,
    }
    assert (located["server_hops_estimate"], located["server_ttl"], located["failure"]) == (2, None, None)


def test_an_uncensored_site_has_no_reset_and_answers_at_its_hop(lab: Lab) -> None:
    report = forensics(lab, "https://en.wikipedia.org/", "--address", lab.plan.site_ip("en.wikipedia.org"))
    rst = report["rst_forensics"]
    assert (rst["verdict"], rst["failure"], rst["server_answered"], rst["resets"]) == ("none", None, True, [])
    assert rst["syn_ack"]["ttl"] == 63
    assert _hops(report) == [(1, "time_exceeded", lab.plan.isp_access_ip), (2, "server", None)]
    located = report["localisation"]
    assert (located["server_ttl"], located["server_hops_estimate"], located["blocking_ttl"]) == (2, 2, None)


def test_a_server_resetting_itself_is_the_end_host(lab: Lab) -> None:
    report = forensics(lab, "https://telegram.org/")
    rst = report["rst_forensics"]
    assert (rst["verdict"], rst["signs"], rst["failure"]) == ("end_host", [], "connection_reset")
    assert _resets(report) == [("R", 63, 2, "after_client_hello")]  # the SYN-ACK's TTL: same sender
    located = report["localisation"]
    assert _hops(report) == [(1, "time_exceeded", lab.plan.isp_access_ip), (2, "reset", None)]
    assert (located["blocking_ttl"], located["reset_source"], located["device_hop"]) == (2, "end_host", None)


def test_a_reset_answering_the_syn_is_recorded_but_not_judged(lab: Lab) -> None:
    report = forensics(lab, "https://www.tiktok.com/")
    rst = report["rst_forensics"]
    assert (rst["verdict"], rst["signs"], rst["failure"]) == ("unknown", ["no_syn_ack"], "connection_refused")
    assert (rst["syn_ack"], rst["client_hello_sent"]) == (None, False)
    assert _resets(report) == [("RA", 64, 1, "after_syn")]  # hop 1 answered the SYN: a clue, not proof
    located = report["localisation"]
    assert _hops(report) == [(1, "connect_failed", None)]
    assert located["failure"] == "connect_failed: connection_refused"
