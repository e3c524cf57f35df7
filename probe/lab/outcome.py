"""What a measurement shows, in the terms of a scenario's expectations, and the comparison.

:func:`observe` reads the JSON of one ``probe measure --json`` run and returns the same keys a
scenario target may expect (:mod:`probe.lab.scenario`): the step where the measurement stopped
and its failure, the DNS facts, the final response, and the verdict keys as the probe set them.
Addresses become symbols (``site``, ``blockpage``, ``bogon``, ``localhost``…) so scenario files
do not depend on a run's address block.

:func:`probe.lab.runner.with_outcomes` then adds what a volunteer reads for each target, ``outcome``
(:mod:`probe.outcome`), once the whole scenario is measured: the outcome depends on the
heartbeat of the "round" the scenario's targets form (:func:`network_up`), as it does in
``probe run``, so a mobile shutdown reads "network shut down", never "reachable".
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Final

from probe.lab.plan import LabPlan
from probe.lab.scenario import Expected
from probe.outcome import Outcome, outcome_of
from probe.serialize import parse_tags

JSON_KEYS: Final = {"mechanism": "x_mechanism", "confirmed": "x_confirmed"}
"""Expectation keys whose OONI JSON key is ours, hence ``x_``-prefixed (:mod:`probe.serialize`)."""
VERDICT_KEYS: Final = (
    "blocking",
    "accessible",
    "dns_consistency",
    "mechanism",
    "confirmed",
    "control_failure",
)


def observe(measurement: Mapping[str, Any], plan: LabPlan) -> dict[str, Expected]:
    """The observable facts of *measurement* (a parsed ``probe measure --json`` document)."""
    keys: Mapping[str, Any] = measurement["test_keys"]
    host = urllib.parse.urlsplit(str(measurement["input"])).hostname or ""
    requests: list[Mapping[str, Any]] = keys.get("requests") or []
    final = requests[0] if requests else None
    response = _response(final) if final else None
    http_failure = keys.get("http_experiment_failure")
    dns_failure = keys.get("dns_experiment_failure")
    observed: dict[str, Expected] = {}
    # "none": the last hop got its page. Not read from http_experiment_failure, a verdict key:
    # OONI sets it from the system resolver's failure even when another resolver's address
    # served the page (rule 5.4), and clears it where no rule applies (loopback answers).
    if _got_page(keys):
        observed["step"], observed["failure"] = "none", None
    else:
        failure = http_failure if http_failure is not None else dns_failure
        observed["step"], observed["failure"] = _step(keys), failure
    observed["dns_experiment_failure"] = dns_failure
    observed["system_answer"] = _answer(keys, "getaddrinfo", None, host, plan)
    observed["resolver_answer"] = _answer(keys, "udp", "A", host, plan)
    observed["status"] = int(response["code"]) if response else None
    observed["title"] = str(response.get("x_title", "")) if response else None
    observed["final_host"] = urllib.parse.urlsplit(str(final["request"]["url"])).hostname if final else None
    for key in VERDICT_KEYS:
        observed[key] = keys.get(JSON_KEYS.get(key, key))
    return observed


def network_up(measurements: Iterable[Mapping[str, Any]]) -> bool | None:
    """The scenario's heartbeat: did any TCP connect succeed, block-page servers aside?

    As a round's (:func:`measurements.store.summary.heartbeat_of`: ``None`` without measurements), except
    that a measurement confirmed as a block page does not count: the censor's own server, inside
    the ISP, answering says nothing of the network beyond it (the mobile-shutdown scenario).
    """
    seen = False
    for measurement in measurements:
        seen = True
        keys: Mapping[str, Any] = measurement["test_keys"]
        if _key(keys, "confirmed"):
            continue
        if any((connect.get("status") or {}).get("success") for connect in keys.get("tcp_connect") or []):
            return True
    return False if seen else None


def outcome(measurement: Mapping[str, Any], *, up: bool | None) -> Outcome:
    """What a person reads for *measurement* in a scenario whose heartbeat is *up*."""
    keys: Mapping[str, Any] = measurement["test_keys"]
    return outcome_of(
        blocking=keys.get("blocking"),
        accessible=keys.get("accessible"),
        mechanism=_key(keys, "mechanism"),
        confirmed=_key(keys, "confirmed"),
        control_failure=keys.get("control_failure"),
        network_up=up,
    )


def _key(keys: Mapping[str, Any], name: str) -> Any:
    """One of our own keys: ``x_``-prefixed in the OONI JSON, bare in older documents."""
    return keys.get(JSON_KEYS.get(name, name), keys.get(name))


def compare(expected: Mapping[str, Expected], observed: Mapping[str, Expected]) -> list[str]:
    """One line per expected key whose observed value differs (empty: the target matches)."""
    problems = []
    for key, want in expected.items():
        got = observed.get(key)
        if not _same(want, got):
            problems.append(f"{key}: expected {render(want)}, observed {render(got)}")
    return problems


def render(value: Expected) -> str:
    """A value as scenario files write it (``null`` for none, strings quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else repr(value)


def _same(want: Expected, got: Expected) -> bool:
    # bool is an int: `false` must not equal a status code 0, nor `true` a 1.
    return type(want) is type(got) and want == got


def _depth(step: Mapping[str, Any]) -> int:
    """The hop of a step of the JSON (:func:`probe.serialize.parse_tags`); every step the
    probe records has one, so the ``-1`` of a step without one (no hop) never decides."""
    depth = parse_tags(step.get("tags")).depth
    return -1 if depth is None else depth


def _got_page(keys: Mapping[str, Any]) -> bool:
    """True when a request of the deepest hop reached got a response without failure."""
    steps = ("queries", "tcp_connect", "tls_handshakes", "requests")
    last = max((_depth(item) for key in steps for item in keys.get(key) or []), default=0)
    return any(
        _depth(request) == last and _response(request) is not None and request.get("failure") is None
        for request in keys.get("requests") or []
    )


def _response(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The request's response; ``None`` for OONI's empty one (code 0: none arrived)."""
    response: Mapping[str, Any] | None = request.get("response")
    return response if response and response.get("code") else None


def _step(keys: Mapping[str, Any]) -> str:
    """The deepest step the last hop reached: ``http``, ``tls``, ``tcp`` or ``dns``."""
    steps = {
        "dns": keys.get("queries") or [],
        "tcp": keys.get("tcp_connect") or [],
        "tls": keys.get("tls_handshakes") or [],
        "http": keys.get("requests") or [],
    }
    last = max((_depth(item) for items in steps.values() for item in items), default=0)
    for step in ("http", "tls", "tcp"):
        if any(_depth(item) == last for item in steps[step]):
            return step
    return "dns"


def _answer(
    keys: Mapping[str, Any], engine: str, query_type: str | None, host: str, plan: LabPlan
) -> str | None:
    """The depth-0 answer of *engine* as sorted symbols joined by ``,``; ``none`` when empty."""
    for query in keys.get("queries") or []:
        if query.get("engine") != engine or _depth(query) != 0:
            continue
        if query_type is not None and query.get("query_type") != query_type:
            continue
        addresses = [a.get("ipv4") or a.get("ipv6") for a in query.get("answers") or []]
        labels = sorted({plan.label(str(ip), host) for ip in addresses if ip})
        return ",".join(labels) or "none"
    return None
