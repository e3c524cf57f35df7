"""The tests beyond websites in a scenario: what runs, what it must find, and what it found.

A scenario may run ``probe <command>`` (``telegram``, ``whatsapp``, ``tor``, ``vpn`` …)
from the client beside (or instead of) its web targets::

    [[nettests]]
    command = "telegram"            # the probe command
    args = []                       # optional: more arguments
    target = "telegram"             # optional: which measurement (its input, else its test
                                    # name), when the command prints several
    test_name = "telegram"          # optional expectations, compared when present:
    blocking = "tcp_ip"             #   the summary (x_blocking, x_accessible, x_mechanism in
    accessible = false              #   the test keys), the outcome a volunteer reads,
    mechanism = "tcp.timeout"
    outcome = "blocked.anomaly"
    keys = { telegram_tcp_blocking = true, telegram_web_status = "ok" }   # exact test keys

The runner calls ``probe <command> --json --config SETTINGS --endpoints OVERRIDE --timeout T
[args]`` in the client namespace: every such command takes those options, prints its OONI
measurement as JSON (one document, a JSON array, or one document per line), writes its
summary into its test keys as ``x_blocking``, ``x_accessible`` and ``x_mechanism``, and
exits 0 whatever it found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from probe.errors import ConfigError
from probe.mechanism import Mechanism
from probe.outcome import Outcome, outcome_of

SUMMARY_KEYS: Final = {"blocking": "x_blocking", "accessible": "x_accessible", "mechanism": "x_mechanism"}
"""Summary field → the test key a test beyond websites writes it in."""
_KEYS: Final = {
    "command",
    "args",
    "target",
    "test_name",
    "blocking",
    "accessible",
    "mechanism",
    "outcome",
    "keys",
}
_COMMAND_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,40}")
NULL: Final = "null"

Fail = Callable[[str, str], ConfigError]


@dataclass(frozen=True, slots=True)
class NettestSpec:
    """One ``[[nettests]]`` entry."""

    command: str
    args: tuple[str, ...] = ()
    target: str | None = None
    expect: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """``test_name``, ``blocking``, ``accessible``, ``mechanism``, ``outcome``, ``keys.<name>``."""

    @property
    def label(self) -> str:
        """How reports name it: ``probe telegram`` (with its target when it selects one)."""
        return f"probe {self.command}" + (f" [{self.target}]" if self.target else "")


def parse_nettests(data: Mapping[str, Any], fail: Fail) -> tuple[NettestSpec, ...]:
    """The ``nettests`` of a scenario's parsed TOML.

    Raises:
        ConfigError: from *fail*, for the first invalid key.
    """
    raw = data.get("nettests", [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise fail("nettests", "must be an array of tables ([[nettests]])")
    return tuple(_spec(item, f"nettests[{index}]", fail) for index, item in enumerate(raw))


def _spec(item: Mapping[str, Any], where: str, fail: Fail) -> NettestSpec:
    for key in item:
        if key not in _KEYS:
            raise fail(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(_KEYS))})")
    command = item.get("command")
    if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
        raise fail(f"{where}.command", "required: a probe command (telegram, whatsapp, tor, …)")
    args = item.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise fail(f"{where}.args", "a list of strings")
    target = item.get("target")
    if target is not None and (not isinstance(target, str) or not target):
        raise fail(f"{where}.target", "a non-empty string")
    expect: dict[str, Any] = {}
    for key in ("test_name", "mechanism", "outcome"):
        if key in item:
            value = item[key]
            if not isinstance(value, str) or not value:
                raise fail(f"{where}.{key}", "a non-empty string")
            expect[key] = None if value == NULL else value
    if "mechanism" in item and item["mechanism"] not in (*(m.value for m in Mechanism), NULL):
        raise fail(f"{where}.mechanism", f'must be "null" or one of {", ".join(m.value for m in Mechanism)}')
    if "outcome" in item and item["outcome"] not in {o.value for o in Outcome}:
        raise fail(f"{where}.outcome", f"must be one of {', '.join(o.value for o in Outcome)}")
    for key in ("blocking", "accessible"):
        if key in item:
            value = item[key]
            if not isinstance(value, str | bool):
                raise fail(f"{where}.{key}", 'must be true, false, a string or "null"')
            expect[key] = None if value == NULL else value
    keys = item.get("keys", {})
    if not isinstance(keys, dict):
        raise fail(f"{where}.keys", "must be a table of test keys and their exact values")
    for name, value in keys.items():
        expect[f"keys.{name}"] = None if value == NULL else value
    return NettestSpec(command=command, args=tuple(args), target=target, expect=MappingProxyType(expect))


def command_args(spec: NettestSpec, *, settings: str, endpoints: str, timeout: float) -> list[str]:
    """The ``probe`` arguments of *spec* (after ``python -m probe.cli``)."""
    return [
        spec.command,
        "--json",
        "--config",
        settings,
        "--endpoints",
        endpoints,
        "--timeout",
        f"{timeout:g}",
        *spec.args,
    ]


def documents(stdout: bytes) -> list[dict[str, Any]]:
    """The measurements a command printed: one JSON document, a JSON array, or JSON lines.

    Raises:
        ValueError: the output is none of those.
    """
    text = stdout.decode("utf-8").strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items or not all(isinstance(item, dict) and "test_keys" in item for item in items):
        raise ValueError("not OONI measurements")
    return items


def select(spec: NettestSpec, measurements: list[dict[str, Any]]) -> dict[str, Any]:
    """The measurement *spec* is about: the one whose input (else test name) is its target.

    Raises:
        ValueError: no measurement, or several and no target to choose.
    """
    if spec.target is None:
        if len(measurements) != 1:
            raise ValueError(f"{len(measurements)} measurements and no target to choose one")
        return measurements[0]
    for measurement in measurements:
        if (measurement.get("input") or measurement.get("test_name")) == spec.target:
            return measurement
    raise ValueError(f"no measurement of target {spec.target!r}")


def observe(spec: NettestSpec, measurement: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of *measurement* that *spec* may expect (``outcome`` is added by the runner)."""
    keys: Mapping[str, Any] = measurement.get("test_keys") or {}
    observed: dict[str, Any] = {"test_name": measurement.get("test_name")}
    for name, key in SUMMARY_KEYS.items():
        observed[name] = keys.get(key)
    for name in spec.expect:
        if name.startswith("keys."):
            observed[name] = keys.get(name.removeprefix("keys."))
    return observed


def outcome(measurement: Mapping[str, Any], *, up: bool | None) -> Outcome:
    """What a person reads for a test beyond websites, in a scenario whose heartbeat is *up*."""
    keys: Mapping[str, Any] = measurement.get("test_keys") or {}
    return outcome_of(
        blocking=keys.get("x_blocking"),
        accessible=keys.get("x_accessible"),
        mechanism=keys.get("x_mechanism"),
        confirmed=None,
        control_failure=None,
        network_up=up,
    )
