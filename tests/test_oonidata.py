"""OONI's own data library reads our measurements as they are (issue 10).

Every measurement of a loopback round (``probe export --format jsonl``), of ``probe measure
--json`` and of every lab scenario must load with ``oonidata`` 0.3.0
(``dataclient.load_measurement``) and yield observations with ``oonidata`` 0.2.3
(``observations.make_web_connectivity_observations``), with no error, not even one oonidata
only logs. oonidata's pins clash with ours and with each other, so each version gets a
virtualenv of its own, made once and cached under ``$XDG_CACHE_HOME/reachprobe-oonidata/``
(``~/.cache`` by default); ``tests/oonidata_check.py`` runs inside them. Without PyPI the
tests skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from probe.cli import main
from probe.helper.app import HelperSettings
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.lab.scenario import scenario_paths
from probe.steps import dns
from tests.servers.dns_server import NXDOMAIN, Reply, ScriptedDNSServer
from tests.servers.helper_server import running_helper
from tests.servers.http_server import http_server
from tests.servers.tcp_server import closed_port, tcp_server

CHECK = Path(__file__).with_name("oonidata_check.py")
VERSIONS = {"load": "0.3.0", "obs": "0.2.3"}
TIMEOUT = 1.0


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reachprobe-oonidata"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must prove the oonidata round trip: {reason}")
    pytest.skip(reason)


def oonidata_python(version: str) -> Path:
    """The interpreter of a virtualenv with ``oonidata==version``, made once and cached."""
    venv = _cache_dir() / f"oonidata-{version}-py{sys.version_info.major}.{sys.version_info.minor}"
    python, done = venv / "bin" / "python", venv / ".installed"
    if done.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"oonidata=={version}"],
    )
    for step in steps:
        try:
            run = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired:
            run = None
        if run is None or run.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            detail = (run.stderr.strip().splitlines() or ["?"])[-1] if run is not None else "timed out"
            _unavailable(f"cannot install oonidata=={version} (pip needs PyPI): {detail}")
    done.write_text(version)
    return python


@pytest.fixture(scope="session")
def oonidata() -> dict[str, Path]:
    """Stage name → the python of its oonidata virtualenv."""
    return {stage: oonidata_python(version) for stage, version in VERSIONS.items()}


@dataclass(frozen=True)
class Figures:
    total: int
    loaded: int
    built: int
    observations: dict[str, int]
    problems: list[str]

    def __str__(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.observations.items())
        return (
            f"oonidata 0.3.0 loaded {self.loaded}/{self.total}; "
            f"0.2.3 built observations for {self.built}/{self.total} "
            f"({sum(self.observations.values())}: {kinds})"
        )


def check(
    oonidata: dict[str, Path], measurements: list[dict[str, Any]], tmp_path: Path, label: str
) -> Figures:
    """Run both oonidata stages over *measurements* and print the figures."""
    path = tmp_path / f"{label}.jsonl"
    path.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in measurements), encoding="utf-8")
    results = {}
    for stage, python in oonidata.items():
        run = subprocess.run(
            [str(python), str(CHECK), stage, str(path)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        results[stage] = json.loads(run.stdout)
    load, obs = results["load"], results["obs"]
    problems = [
        f"{label} line {i + 1} ({m.get('input')}): {stage} {r['error']}"
        for stage, rs in (("0.3.0", load), ("0.2.3", obs))
        for i, (m, r) in enumerate(zip(measurements, rs, strict=True))
        if not r["ok"]
    ]
    counts = {
        kind: sum(r.get("observations", {}).get(kind, 0) for r in obs)
        for kind in ("dns", "tcp", "tls", "http")
    }
    figures = Figures(
        len(measurements), sum(r["ok"] for r in load), sum(r["ok"] for r in obs), counts, problems
    )
    print(f"{label}: {figures}")
    return figures


def assert_all_read(figures: Figures) -> None:
    assert not figures.problems, "\n".join(figures.problems)
    assert figures.total > 0
    assert figures.loaded == figures.built == figures.total


# --- a loopback round and probe measure ------------------------------------------------------


@pytest.fixture
def loopback(ca: trustme.CA, ca_file: Path) -> Iterator[dict[str, Any]]:
    """Every kind of outcome on 127.0.0.1: pages, TLS, redirects, NXDOMAIN, refused, timeouts."""
    script = {name: Reply(a=("127.0.0.1",)) for name in ("site.test", "tls.test", "hang.test", "closed.test")}
    script["nx.test"] = NXDOMAIN
    with (
        ScriptedDNSServer(script) as dns_server,
        http_server() as web,
        http_server(ca.issue_cert("tls.test", "127.0.0.1")) as tls_site,
        tcp_server("accept") as hang,
    ):
        closed = closed_port()
        helper = HelperSettings(
            config=HelperConfig(
                resolvers=(dns.parse_resolver(dns_server.address),),
                ca_file=ca_file,
                dns_timeout=TIMEOUT,
                tcp_timeout=TIMEOUT,
                tls_timeout=TIMEOUT,
                http_timeout=TIMEOUT,
            ),
            policy=AddressPolicy.allowing(("127.0.0.0/8",)),
        )
        urls = [
            f"http://site.test:{web.port}/",
            f"http://127.0.0.1:{web.port}/",
            f"http://site.test:{web.port}/r/2",
            f"https://tls.test:{tls_site.port}/",
            f"http://nx.test:{web.port}/",
            f"http://closed.test:{closed}/",
            f"http://hang.test:{hang}/",
            f"http://site.test:{web.port}/reset",
        ]
        with running_helper(helper) as control_url:
            yield {"urls": urls, "dns": dns_server.address, "control": control_url}


def test_oonidata_reads_a_loopback_round_and_probe_measure(
    oonidata: dict[str, Path],
    loopback: dict[str, Any],
    ca_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls, resolver, control = loopback["urls"], loopback["dns"], loopback["control"]
    measured: list[dict[str, Any]] = []
    for url in urls:
        for control_flag in (control, "none"):
            status = main(
                ["measure", url, "--json", "--no-system-resolver", "--allow-loopback", "--resolver", resolver,
                 "--ca-file", str(ca_file), "--timeout", str(TIMEOUT), "--control", control_flag]
            )  # fmt: skip
            out, _ = capsys.readouterr()
            assert status == 0
            measured.append(json.loads(out))

    # The 0.5.28 flags are computed (reference §1.6), not placeholders: exact values per outcome.
    flags = {
        (m["input"], m["test_helpers"] is not None): tuple(
            m["test_keys"][k] for k in ("x_blocking_flags", "x_dns_flags", "x_null_null_flags")
        )
        for m in measured
    }
    site, _, _, https, nx, closed, _, _ = urls
    assert flags[site, True] == (32, 1, 0)  # Success; 127.0.0.1 is a bogon (informational)
    assert flags[https, False] == (32, 1, 8)  # HTTPS without a control: SuccessfulHTTPS
    assert flags[nx, True] == (0, 0, 1)  # NXDOMAIN for the control too: expected DNS failure
    assert flags[closed, True] == (0, 1, 2)  # refused for the control too: expected TCP failure

    targets = tmp_path / "targets.csv"
    targets.write_text(
        "url,category_code,category_description,date_added,source,notes\n"
        + "".join(f"{url},GRP,Social Networking,2024-02-17,test,\n" for url in urls)
    )
    database = tmp_path / "m.sqlite3"
    for control_url in (control, None):
        settings = tmp_path / f"settings-{bool(control_url)}.toml"
        settings.write_text(
            "[tests]\nwhatsapp = false\ntelegram = false\nsignal = false\nfacebook_messenger = false\n"
            "http3 = false\n"
            f'[measure]\nresolvers = ["{resolver}"]\nuse_system_resolver = false\nallow_loopback = true\n'
            f'ca_file = "{ca_file}"\n'
            + "".join(f"{step}_timeout = {TIMEOUT}\n" for step in ("dns", "tcp", "tls", "http"))
            + (f'[control]\nurl = "{control_url}"\n' if control_url else "")
            + f'[targets]\nlists = ["{targets}"]\n[storage]\ndatabase_url = "sqlite:///{database}"\n'
        )
        assert main(["run", "--once", "--config", str(settings)]) == 0
    export = tmp_path / "export.jsonl"
    assert main(["export", "--format", "jsonl", "--config", str(settings), "-o", str(export)]) == 0
    capsys.readouterr()
    exported = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert len(exported) == 2 * len(urls)
    # One report per round, one per probe measure; a measurement_uid each.
    assert len({m["report_id"] for m in exported}) == 2
    assert len({m["report_id"] for m in measured}) == len(measured)
    assert len({m["measurement_uid"] for m in exported + measured}) == len(exported + measured)
    assert {json.dumps(m["test_helpers"]) for m in exported} == {
        "null",
        json.dumps({"backend": {"address": control, "type": "http"}}),
    }

    with capsys.disabled():
        figures = check(oonidata, measured + exported, tmp_path, "loopback")
    assert_all_read(figures)
    assert figures.observations["tls"] > 0 and figures.observations["http"] > 0


# --- every lab scenario ----------------------------------------------------------------------


@pytest.mark.lab
def test_oonidata_reads_every_lab_scenario(
    oonidata: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.lab.conftest import lab_unavailable, scenario_report

    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    measurements: list[dict[str, Any]] = []
    missing: list[str] = []
    for path in scenario_paths():
        report = scenario_report(path)  # shared with tests/lab/test_scenarios.py: each lab runs once
        for result in report.results:
            if result.measurement is None:
                missing.append(f"{path.stem}: {result.url}")
            else:
                measurements.append(result.measurement)
    assert not missing, f"targets without a measurement: {missing}"
    with capsys.disabled():
        figures = check(oonidata, measurements, tmp_path, f"lab ({len(scenario_paths())} scenarios)")
    assert_all_read(figures)


# --- Tor, SNI blocking, OpenVPN and WireGuard (issue 15) ---------------------------------------


def test_oonidata_reads_tor_sni_blocking_and_the_vpn_tests(
    oonidata: dict[str, Path], ca: trustme.CA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio
    import ssl

    from probe import webconnectivity
    from probe.nettests import openvpn, sni_blocking, tor, wireguard
    from probe.nettests.base import Context
    from probe.serialize import to_json
    from probe.steps.tls import ClientContexts
    from tests.nettests.test_sni_blocking import sni_filter
    from tests.nettests.test_vpn import free_udp_port, serving, wg_service, wg_target

    context = Context(probe_cc="PK", probe_asn="AS17557")
    verifying = ssl.create_default_context()
    ca.configure_trust(verifying)
    measured = []
    udp = free_udp_port()
    with (
        tcp_server("tls", ca.issue_cert("decoy.test")) as tls_port,
        tcp_server("reset_after_hello") as reset_port,
        serving(wg_service(udp)),
        sni_filter(ca.issue_cert("decoy.test"), "reset") as filtered_port,
        ScriptedDNSServer({"blocked.test": Reply(a=("127.0.0.1",))}) as resolver,
    ):
        targets = [
            tor.TorTarget(f"127.0.0.1:{tls_port}", "or_port_dirauth", name="moria1"),
            tor.TorTarget(f"127.0.0.1:{reset_port}", "or_port", fingerprint="A" * 40),
            tor.TorTarget(f"127.0.0.1:{closed_port()}", "obfs4", fingerprint="B" * 40, source="operator"),
        ]
        config = tor.TorConfig(timeout=TIMEOUT)
        measured.append(asyncio.run(tor.measure(targets, context=context, config=config)))
        for helper in (tls_port, reset_port, closed_port()):
            measured.append(
                asyncio.run(
                    sni_blocking.measure(
                        "blocked.test", context=context, control_sni="decoy.test",
                        testhelper=f"127.0.0.1:{helper}", ssl_context=verifying, timeout=TIMEOUT,
                    )
                )
            )  # fmt: skip
        measured.append(asyncio.run(wireguard.measure(wg_target(udp), context=context, timeout=TIMEOUT)))
        for transport, port in (("tcp", reset_port), ("tcp", closed_port()), ("udp", free_udp_port())):
            endpoint = openvpn.OpenVPNEndpoint("127.0.0.1", port, transport)  # type: ignore[arg-type]  # a literal
            measured.append(asyncio.run(openvpn.measure(endpoint, context=context, timeout=TIMEOUT)))
        # A web measurement whose failed handshake a decoy SNI settled (its steps tagged x_decoy_sni).
        web = webconnectivity.MeasureConfig(
            resolvers=(dns.parse_resolver(resolver.address),), use_system_resolver=False, allow_loopback=True,
            decoy_sni="decoy.test", contexts=ClientContexts(verifying, verifying),
        ).with_timeout(TIMEOUT)  # fmt: skip
        measured_web = asyncio.run(
            webconnectivity.measure(f"https://blocked.test:{filtered_port}/", config=web)
        )
    documents = [json.loads(to_json(m)) for m in [*measured, measured_web]]
    assert documents[-1]["test_keys"]["x_mechanism"] == "tls.reset.sni"
    names = ["tor", *["sni_blocking"] * 3, "wireguard", *["openvpn"] * 3, "web_connectivity"]
    assert [d["test_name"] for d in documents] == names
    with capsys.disabled():
        figures = check(oonidata, documents, tmp_path, "tor, sni_blocking, wireguard, openvpn")
    assert_all_read(figures)
    assert figures.observations["tcp"] >= 3 and figures.observations["tls"] >= 2  # the Tor targets'


# --- WhatsApp, Telegram, Signal, Facebook Messenger (issue 15) --------------------------------


def test_oonidata_reads_the_messaging_tests(
    oonidata: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from contextlib import ExitStack

    from probe.nettests import facebook_messenger, signal, telegram, whatsapp
    from tests.nettests.loopback import CONTEXT, LOCAL
    from tests.nettests.loopback import loopback as messaging_world
    from tests.nettests.loopback import run as run_test

    names = ("web.telegram.org", "v.whatsapp.net", "web.whatsapp.com", "storage.signal.org")
    script = {name: LOCAL for name in (*names, "e1.whatsapp.net", "b-api.facebook.com", "stun.fbsbx.com")}
    documents = []
    with messaging_world(tmp_path, script) as lab, ExitStack() as stack:
        accept = stack.enter_context(tcp_server("accept"))
        dc = stack.enter_context(http_server())
        reset = stack.enter_context(tcp_server("reset_after_hello"))
        sites = {name: stack.enter_context(http_server(lab.cert(name))).port for name in names}
        config = lab.config(timeout=TIMEOUT, asn_of=lambda ip: 32934)
        # Each test with something reached and something blocked, so every record kind appears.
        lists = {
            telegram: [
                {"role": "datacenter", "host": "127.0.0.1", "ports": [dc.port, closed_port()]},
                {"role": "web", "url": f"https://web.telegram.org:{reset}/"},
            ],
            whatsapp: [
                {"role": "endpoint", "host": "e1.whatsapp.net", "ports": [accept, closed_port()]},
                {
                    "role": "registration",
                    "url": f"https://v.whatsapp.net:{sites['v.whatsapp.net']}/v2/register",
                },
                {"role": "web", "url": f"https://web.whatsapp.com:{sites['web.whatsapp.com']}/"},
            ],
            signal: [
                {"role": "backend", "url": f"https://storage.signal.org:{sites['storage.signal.org']}/"},
                {"role": "backend", "url": f"https://storage.signal.org:{reset}/"},
                {"role": "uptime", "host": "storage.signal.org"},
            ],
            facebook_messenger: [
                {"role": "stun", "name": "stun", "host": "stun.fbsbx.com"},
                {"role": "service", "name": "b_api", "host": "b-api.facebook.com", "ports": [accept]},
                {"role": "service", "name": "edge", "host": "b-api.facebook.com", "ports": [closed_port()]},
            ],
        }
        for module, entries in lists.items():
            listed = lab.endpoint_list(module.FAMILY, entries)
            documents.append(run_test(module.measure(listed, context=CONTEXT, config=config))[0])
    names_seen = [d["test_name"] for d in documents]
    assert names_seen == ["telegram", "whatsapp", "signal", "facebook_messenger"]
    with capsys.disabled():
        figures = check(oonidata, documents, tmp_path, "telegram, whatsapp, signal, facebook_messenger")
    assert_all_read(figures)
    # oonidata builds observations of the tests its dispatch knows: Signal's here.
    assert figures.observations["tls"] == 2 and figures.observations["http"] == 1
