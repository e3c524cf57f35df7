"""One scenario end to end: build the lab, measure every target from the client, compare, tear down.

Each target is one ``probe measure --json`` process run inside the client namespace with the
lab's probe settings (``--config``: the lab CA, the public resolver, the test helper, the lab's
IP → ASN map and public networks) and the scenario's step timeout;
targets run concurrently (bounded), so a scenario costs about one timeout budget however many
of its targets are black-holed. The scenario's tests beyond websites run the same way, each
one ``probe <command> --json`` process with the lab's endpoint-list override
(:mod:`probe.lab.nettest`), concurrently with the targets. The lab is always torn down,
whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.lab import nettest
from probe.lab.nettest import NettestSpec
from probe.lab.network import Lab
from probe.lab.outcome import compare, network_up, observe, outcome
from probe.lab.plan import LabPlan
from probe.lab.processes import child_env
from probe.lab.scenario import Expected, Scenario, Target
from probe.lab.topology import require_tools

DEFAULT_CONCURRENCY = 4


@dataclass(slots=True)
class TargetResult:
    """What happened to one target, against what was expected."""

    url: str
    expected: dict[str, Expected]
    observed: dict[str, Expected]
    problems: list[str]
    elapsed_s: float
    measurement: dict[str, Any] | None = None
    nettest: NettestSpec | None = None
    """The test beyond websites this result is of (``None``: a web target, *url*)."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(slots=True)
class Report:
    """The outcome of one scenario run."""

    scenario: Scenario
    plan: LabPlan
    results: list[TargetResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def as_dict(self, *, measurements: bool = True) -> dict[str, Any]:
        """JSON-ready: the scenario, timings, and per target expected/observed/problems."""
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "lab": self.plan.describe(),
            "ok": self.ok,
            "timings": {key: round(value, 3) for key, value in self.timings.items()},
            "censorship": [entry.describe() for entry in self.scenario.censorship],
            "targets": [
                {
                    "url": r.url,
                    "ok": r.ok,
                    "expected": r.expected,
                    "observed": r.observed,
                    "problems": r.problems,
                    "elapsed_s": round(r.elapsed_s, 3),
                    **({"nettest": r.nettest.command} if r.nettest else {}),
                    **({"measurement": r.measurement} if measurements else {}),
                }
                for r in self.results
            ],
        }


Progress = Callable[[str], None]


def run_scenario(
    scenario: Scenario, *, concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | None = None
) -> Report:
    """Run *scenario* in a fresh lab and return the report (the lab is gone when this returns).

    Raises:
        LabError: the lab cannot run here or could not be set up.
    """
    require_tools()
    say = progress or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="reachprobe-lab-") as tmp:
        lab = Lab.create(Path(tmp), scenario.world)
        report = Report(scenario=scenario, plan=lab.plan)
        with lab:
            say(f"lab {lab.plan.prefix}: building {lab.plan.block}")
            lab.start(scenario.censorship)
            tests = f" and {len(scenario.nettests)} tests" if scenario.nettests else ""
            say(f"lab {lab.plan.prefix}: measuring {len(scenario.targets)} targets{tests}")
            started = time.monotonic()
            report.results = asyncio.run(_measure_all(lab, scenario, concurrency))
            lab.timings["measure_s"] = time.monotonic() - started
        report.timings = dict(lab.timings)
    return report


async def _measure_all(lab: Lab, scenario: Scenario, concurrency: int) -> list[TargetResult]:
    gate = asyncio.Semaphore(min(concurrency, scenario.concurrency or concurrency))

    async def one(target: Target) -> TargetResult:
        async with gate:
            return await _measure(lab, scenario, target)

    async def test(spec: NettestSpec) -> TargetResult:
        async with gate:
            return await _run_nettest(lab, scenario, spec)

    results = await asyncio.gather(
        *(one(target) for target in scenario.targets), *(test(spec) for spec in scenario.nettests)
    )
    return with_outcomes(list(results))


def with_outcomes(results: list[TargetResult]) -> list[TargetResult]:
    """Add each target's ``outcome`` (what a volunteer reads) and compare it too.

    The outcome depends on the scenario's heartbeat (:func:`~probe.lab.outcome.network_up`),
    known only once every target is measured.
    """
    up = network_up(r.measurement for r in results if r.measurement is not None)
    for result in results:
        if result.measurement is None:
            continue
        if result.nettest is not None:
            result.observed["outcome"] = nettest.outcome(result.measurement, up=up).value
        else:
            result.observed["outcome"] = outcome(result.measurement, up=up).value
        result.problems = compare(result.expected, result.observed)
    return results


async def _run_nettest(lab: Lab, scenario: Scenario, spec: NettestSpec) -> TargetResult:
    args = lab.client_command(
        "probe.cli",
        *nettest.command_args(
            spec,
            settings=str(lab.workdir / "settings.toml"),
            endpoints=str(lab.endpoint_lists),
            timeout=scenario.timeout,
        ),
    )
    started = time.monotonic()
    stdout, stderr, status = await _run(args, deadline=scenario.timeout * 20 + 30)
    elapsed = time.monotonic() - started
    expected = dict(spec.expect)
    try:
        if status != 0:
            raise ValueError(f"exit status {status}")
        measurement = nettest.select(spec, nettest.documents(stdout))
    except (ValueError, UnicodeDecodeError) as exc:
        detail = " ".join(stderr.decode(errors="replace").split()[-30:]) or str(exc)
        problem = f"probe {spec.command} failed ({exc}): {detail}"
        return TargetResult(spec.label, expected, {"step": "error"}, [problem], elapsed, nettest=spec)
    observed = nettest.observe(spec, measurement)
    return TargetResult(
        spec.label, expected, observed, compare(expected, observed), elapsed, measurement, nettest=spec
    )


async def _measure(lab: Lab, scenario: Scenario, target: Target) -> TargetResult:
    args = lab.client_command(
        "probe.cli",
        "measure",
        target.url,
        "--json",
        "--config",
        str(lab.workdir / "settings.toml"),
        "--timeout",
        f"{scenario.timeout:g}",
    )
    started = time.monotonic()
    stdout, stderr, status = await _run(args, deadline=scenario.timeout * 12 + 30)
    elapsed = time.monotonic() - started
    try:
        if status != 0:
            raise ValueError(f"exit status {status}")
        measurement = json.loads(stdout)
        observed = observe(measurement, lab.plan)
    except (ValueError, KeyError, TypeError) as exc:
        detail = " ".join(stderr.decode(errors="replace").split()[-30:]) or str(exc)
        problem = f"probe measure failed ({exc}): {detail}"
        return TargetResult(target.url, target.expect, {"step": "error"}, [problem], elapsed)
    return TargetResult(
        target.url, target.expect, observed, compare(target.expect, observed), elapsed, measurement
    )


async def _run(args: list[str], *, deadline: float) -> tuple[bytes, bytes, int | None]:
    """Run *args*; kill it at *deadline* seconds or on cancellation (Ctrl-C)."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), deadline)
    except TimeoutError:
        return b"", f"killed after {deadline:.0f} s".encode(), None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return stdout, stderr, proc.returncode
