"""Scenario files: what the censor does, what is measured, and what the probe must report.

A scenario is a TOML file in ``probe/lab/scenarios/`` (or anywhere, given by path)::

    name = "pk-x-sni-reset"            # must equal the file name without .toml
    description = "One line for `probe lab list`."
    timeout = 2.0                      # optional: seconds per probe step (default 2)
    concurrency = 1                    # optional: at most this many targets at once
    reference = "where this comes from" # optional, free text

    [[censorship]]                     # zero or more; see probe.lab.censor.KINDS
    kind = "tls.reset.sni"
    target = "x.com"                   # a lab domain or an IPv4 address (per kind)

    [[targets]]                        # one or more URLs measured from the client
    url = "https://x.com/"
    step = "tls"                       # where the measurement stops: none|dns|tcp|tls|http
    failure = "connection_reset"       # that step's failure; omit when step = "none"

A scenario may also host extra world endpoints (``[[endpoints]]``, ``[[lists.<family>]]``:
:mod:`probe.lab.world`), which censorship entries may target by name or DNS name, and run the
tests beyond websites (``[[nettests]]``: :mod:`probe.lab.nettest`) against them; then
``[[targets]]`` may be left out.

Optional expectation keys, compared only when present (the string ``"null"`` means JSON null):
``dns_experiment_failure``, ``system_answer`` and ``resolver_answer`` (what the system resolver
and the public resolver answered, symbolically: ``site``, ``blockpage``, ``bogon``, ``localhost``,
``none``, ``site:<domain>`` or an address), ``status``, ``title``, ``final_host`` (the host of the
last request), ``control_failure``, the verdict keys ``blocking``, ``accessible``,
``dns_consistency``, ``mechanism`` (a :class:`probe.mechanism.Mechanism` value, or ``"null"``)
and ``confirmed`` (the fingerprint's name), and ``outcome``, what a volunteer reads (a
:class:`probe.outcome.Outcome` value: ``reachable``, ``blocked.confirmed``, ``blocked.anomaly``,
``shutdown``, ``no_verdict.control``, …).

Every problem is one line, ``file:key: problem``, raised as :class:`ScenarioError`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from probe.errors import ConfigError
from probe.lab.censor import KINDS, Censorship, target_problem
from probe.lab.nettest import NettestSpec, parse_nettests
from probe.lab.sites import BLOCKPAGE_DOMAIN, HELPER_DOMAIN, SITE_BY_DOMAIN
from probe.lab.world import World, parse_world
from probe.mechanism import Mechanism
from probe.outcome import Outcome
from probe.rounds.tomlfile import read_toml

STEPS: Final = ("none", "dns", "tcp", "tls", "http")
NULL: Final = "null"
DEFAULT_TIMEOUT: Final = 2.0
_TOP_KEYS: Final = {
    "name",
    "description",
    "timeout",
    "concurrency",
    "reference",
    "censorship",
    "targets",
    "endpoints",
    "lists",
    "nettests",
}
_STRING_EXPECTATIONS: Final = (
    "failure",
    "dns_experiment_failure",
    "system_answer",
    "resolver_answer",
    "title",
    "final_host",
    "control_failure",
    "dns_consistency",
    "mechanism",
    "confirmed",
    "outcome",
)
_TARGET_KEYS: Final = {"url", "step", "status", "blocking", "accessible", *_STRING_EXPECTATIONS}
OUTCOMES: Final = tuple(outcome.value for outcome in Outcome)
MECHANISMS: Final = tuple(mechanism.value for mechanism in Mechanism)
RENAMED: Final = {
    "tls.sni_reset": "tls.reset.sni",
    "tls.sni_drop": "tls.drop.sni",
    "http.host_reset": "http.reset.host",
}
"""Kinds renamed to the mechanism vocabulary (issue 10): a file using the old name says so."""
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_RATE_RE: Final = re.compile(r"[1-9][0-9]*(?:bit|kbit|mbit|gbit)")
_HOST_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,253}")


class ScenarioError(ConfigError):
    """A scenario file is unreadable or invalid; the message is ``file:key: problem``."""


Expected = str | int | bool | None


@dataclass(frozen=True, slots=True)
class Target:
    """One URL to measure and what must be observed (``expect``: key → value, None = null)."""

    url: str
    expect: dict[str, Expected]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario file."""

    name: str
    description: str
    censorship: tuple[Censorship, ...]
    targets: tuple[Target, ...]
    timeout: float = DEFAULT_TIMEOUT
    reference: str = ""
    path: Path | None = None
    concurrency: int | None = None
    """Caps the runner's concurrency (1: targets in file order, for shaped links)."""
    world: World = field(default_factory=World)
    """Extra world endpoints and endpoint-list entries (:mod:`probe.lab.world`)."""
    nettests: tuple[NettestSpec, ...] = ()
    """Tests beyond websites to run from the client (:mod:`probe.lab.nettest`)."""


def scenario_dir() -> Path:
    """The directory of the shipped scenario files."""
    return Path(str(resources.files("probe.lab.scenarios")))


def scenario_paths() -> list[Path]:
    """Every shipped scenario file, sorted by name."""
    return sorted(scenario_dir().glob("*.toml"))


def find_scenario(name_or_path: str) -> Path:
    """A scenario file from its name (``pk-x-sni-reset``) or a path to a ``.toml`` file.

    Raises:
        ScenarioError: there is no such scenario.
    """
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ScenarioError(f"{name_or_path}: no such scenario file")
        return path
    path = scenario_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in scenario_paths())
        raise ScenarioError(f"{name_or_path}: unknown scenario (known: {known})")
    return path


def load_scenario(path: Path) -> Scenario:
    """Read and validate the scenario file *path*.

    Raises:
        ScenarioError: the file is unreadable, not TOML, or a key is missing, unknown or invalid.
    """
    return _Validator(path).scenario(read_toml(path, error=ScenarioError))


class _Validator:
    """Turns parsed TOML into a :class:`Scenario`, failing on the first problem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.domains: frozenset[str] = frozenset()
        self.endpoints: frozenset[str] = frozenset()

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.path}:{key}: {problem}")

    def scenario(self, data: dict[str, Any]) -> Scenario:
        self._no_unknown(data, _TOP_KEYS, "")
        name = self._string(data, "name", "")
        if not _NAME_RE.fullmatch(name):
            raise self.fail("name", "use lower-case letters, digits and '-'")
        if name != self.path.stem:
            raise self.fail("name", f"must equal the file name {self.path.stem!r}")
        description = self._string(data, "description", "")
        timeout = data.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
            raise self.fail("timeout", "must be a number of seconds in (0, 60]")
        concurrency = data.get("concurrency")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 64
        ):
            raise self.fail("concurrency", "must be an integer in [1, 64]")
        reference = data.get("reference", "")
        if not isinstance(reference, str):
            raise self.fail("reference", "must be a string")
        reserved = frozenset({*SITE_BY_DOMAIN, HELPER_DOMAIN, BLOCKPAGE_DOMAIN, "helper", "public-resolver"})
        world = parse_world(data, self.fail, reserved=reserved)
        self.domains = frozenset(dns for endpoint in world.endpoints for dns in endpoint.names)
        self.endpoints = frozenset(endpoint.name for endpoint in world.endpoints)
        nettests = parse_nettests(data, self.fail)
        censorship = tuple(
            self._censorship(item, f"censorship[{i}]")
            for i, item in enumerate(self._tables(data, "censorship", required=False))
        )
        targets = tuple(
            self._target(item, f"targets[{i}]")
            for i, item in enumerate(self._tables(data, "targets", required=not nettests))
        )
        return Scenario(
            name,
            description,
            censorship,
            targets,
            float(timeout),
            reference,
            self.path,
            concurrency,
            world=world,
            nettests=nettests,
        )

    def _censorship(self, item: dict[str, Any], where: str) -> Censorship:
        kind = self._string(item, "kind", where)
        if kind in RENAMED:
            raise self.fail(f"{where}.kind", f"{kind!r} is now {RENAMED[kind]!r} (the mechanism's name)")
        if kind not in KINDS:
            raise self.fail(f"{where}.kind", f"unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        spec = KINDS[kind]
        self._no_unknown(item, {"kind", "target", *spec.params}, where)
        target = item.get("target")
        if spec.needs_target and target is None:
            raise self.fail(f"{where}.target", f"required for {kind}")
        if not spec.needs_target and target is not None:
            raise self.fail(f"{where}.target", f"{kind} takes no target")
        if target is not None:
            if not isinstance(target, str) or not _HOST_RE.fullmatch(target):
                raise self.fail(f"{where}.target", "must be a host name or an IPv4 address")
            problem = target_problem(kind, target, domains=self.domains, endpoints=self.endpoints)
            if problem:
                raise self.fail(f"{where}.target", problem)
        params = {key: item[key] for key in spec.params if key in item}
        self._check_params(params, where)
        return Censorship(kind=kind, target=target, params=params)

    def _check_params(self, params: dict[str, Any], where: str) -> None:
        if "rate" in params and not (isinstance(params["rate"], str) and _RATE_RE.fullmatch(params["rate"])):
            raise self.fail(f"{where}.rate", "must be a tc rate such as '64kbit'")
        if "port" in params and (
            isinstance(params["port"], bool)
            or not isinstance(params["port"], int)
            or not 1 <= params["port"] <= 65535
        ):
            raise self.fail(f"{where}.port", "must be a port number 1-65535")
        if "address" in params:
            try:
                ipaddress.IPv4Address(params["address"])
            except ValueError:
                raise self.fail(f"{where}.address", "must be an IPv4 address") from None

    def _target(self, item: dict[str, Any], where: str) -> Target:
        self._no_unknown(item, _TARGET_KEYS, where)
        url = self._string(item, "url", where)
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise self.fail(f"{where}.url", f"not an http(s) URL: {url!r}")
        step = self._string(item, "step", where)
        if step not in STEPS:
            raise self.fail(f"{where}.step", f"must be one of {', '.join(STEPS)}")
        expect: dict[str, Expected] = {"step": step}
        if step == "none":
            expect["failure"] = None
        elif "failure" not in item:
            raise self.fail(f"{where}.failure", f'required when step = {step!r} ("null" for none)')
        for key in _STRING_EXPECTATIONS:
            if key in item:
                expect[key] = _null(self._string(item, key, where))
        if "outcome" in item and item["outcome"] not in OUTCOMES:
            raise self.fail(f"{where}.outcome", f"must be one of {', '.join(OUTCOMES)}")
        if "mechanism" in item and item["mechanism"] not in (*MECHANISMS, NULL):
            raise self.fail(f"{where}.mechanism", f'must be "null" or one of {", ".join(MECHANISMS)}')
        if "status" in item:
            status = item["status"]
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise self.fail(f"{where}.status", "must be an HTTP status code")
            expect["status"] = status
        for key in ("blocking", "accessible"):
            if key in item:
                value = item[key]
                if isinstance(value, str):
                    value = _null(value)
                elif not isinstance(value, bool):
                    raise self.fail(f"{where}.{key}", 'must be true, false, a string or "null"')
                expect[key] = value
        return Target(url=url, expect=expect)

    def _tables(self, data: dict[str, Any], key: str, *, required: bool) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.fail(key, f"must be an array of tables ([[{key}]])")
        if required and not value:
            raise self.fail(key, "at least one is required")
        return value

    def _string(self, data: dict[str, Any], key: str, where: str) -> str:
        full = f"{where}.{key}" if where else key
        if key not in data:
            raise self.fail(full, "missing")
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(full, "must be a non-empty string")
        return value

    def _no_unknown(self, data: dict[str, Any], allowed: set[str], where: str) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(f"{where}.{key}" if where else key, "unknown key")


def _null(value: str) -> str | None:
    return None if value == NULL else value
