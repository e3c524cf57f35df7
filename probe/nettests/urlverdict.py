"""What the urlgetter operations of a messaging test say, and how they are written.

- :func:`verdict`: a failed operation's ``blocking`` and mechanism, as Web Connectivity names
  what it saw without a control (a TLS reset is ``tls.reset``: nothing here says the server
  did not reset); :func:`lying_answer` for loopback and bogon answers; :func:`deciding`, the
  operation that names the mechanism when many failed;
- :func:`summary`: our :class:`~probe.model.Summary` of a test's operations (its ``x_`` test
  keys: :func:`probe.nettests.urlgetter.summary_keys`);
- :func:`records`: OONI's urlgetter keys (``queries``, ``tcp_connect``, ``tls_handshakes``,
  ``requests``, ``network_events`` …) of many operations; :func:`scrubbed`: the volunteer's
  addresses removed; :func:`conclude`: all of it in the df-000 envelope.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from probe import privacy, serialize
from probe.analysis.mechanism import CERTIFICATE_ERRORS, dns_label, http_label, tcp_label, tls_label
from probe.ipinfo import is_bogon, is_loopback, parse_networks
from probe.mechanism import Mechanism
from probe.model import Blocking, OONIMeasurement, Summary
from probe.nettests import base, tlsendpoint
from probe.nettests.urlgetter import (
    CONNECT,
    HTTP_ROUND_TRIP,
    RESOLVE,
    TLS_HANDSHAKE,
    GetterConfig,
    Operation,
    Session,
    summary_keys,
)
from probe.steps import failures


def verdict(operation: Operation, config: GetterConfig | None = None) -> tuple[Blocking, Mechanism]:
    """The summary's ``blocking`` and mechanism for *operation* (no control to compare).

    ``False``/``ok`` when it succeeded; ``dns`` for a failed lookup, or for one that answered
    only loopback or bogon addresses where a connect then failed (``dns.localhost``,
    ``dns.bogon``: :func:`lying_answer`); ``tcp_ip`` for failed connects; ``http-failure`` for
    the TLS handshake and the request. The mechanism names what was seen, as Web
    Connectivity's rule 3 does (:mod:`probe.analysis.mechanism`).
    """
    failure = operation.failure
    if failure is None:
        return False, Mechanism.OK
    if operation.failed_operation == RESOLVE:
        return "dns", dns_label(failure)
    if operation.failed_operation == CONNECT:
        lying = lying_answer(operation.addresses, config or GetterConfig()) if operation.queries else None
        return ("dns", lying) if lying is not None else ("tcp_ip", tcp_label(failure))
    if failure in CERTIFICATE_ERRORS:
        return "http-failure", Mechanism.TLS_CERTIFICATE
    if operation.failed_operation == TLS_HANDSHAKE:
        return "http-failure", Mechanism.TLS_RESET if failure == failures.CONNECTION_RESET else tls_label(
            failure
        )
    return "http-failure", http_label(failure)


def lying_answer(addresses: Sequence[str], config: GetterConfig) -> Mechanism | None:
    """``dns.localhost`` when *addresses* are all loopback, ``dns.bogon`` when all bogons
    (``public_networks`` aside), else ``None``; loopback is no lie with ``allow_loopback``."""
    if not addresses:
        return None
    if all(is_loopback(a) for a in addresses):
        return None if config.allow_loopback else Mechanism.DNS_LOCALHOST
    public = parse_networks(config.public_networks)
    if all(is_bogon(a, public=public) or (config.allow_loopback and is_loopback(a)) for a in addresses):
        return Mechanism.DNS_BOGON
    return None


def deciding(failed: Sequence[Operation]) -> Operation:
    """The failed operation that names the mechanism: the most common way they failed (the
    failed step and its failure), the first seen among equals.

    Raises:
        ValueError: *failed* is empty.
    """
    if not failed:
        raise ValueError("no failed operation")
    ways = Counter((o.failed_operation, o.failure) for o in failed)
    way = ways.most_common(1)[0][0]
    return next(o for o in failed if (o.failed_operation, o.failure) == way)


def summary(blocking: Blocking, mechanism: Mechanism, operations: Sequence[Operation]) -> Summary:
    """A :class:`~probe.model.Summary` with the first failure of each layer among *operations*."""

    def first(*kinds: str) -> str | None:
        return next((o.failure for o in operations if o.failed_operation in kinds), None)

    return Summary(
        blocking=blocking,
        accessible=blocking is False,
        mechanism=mechanism,
        dns_failure=first(RESOLVE),
        tcp_failure=first(CONNECT),
        tls_failure=first(TLS_HANDSHAKE),
        http_failure=first(HTTP_ROUND_TRIP),
    )


def records(operations: Sequence[Operation]) -> dict[str, Any]:
    """OONI's urlgetter keys of *operations*: ``agent`` … ``tls_handshakes`` (df-001/2/5/6/8)."""
    steps = tlsendpoint.records(
        [c for o in operations for c in o.connects],
        [h for o in operations for h in o.handshakes],
        [r for o in operations for r in o.requests],
    )
    queries = [q for o in operations for q in o.queries]
    return {
        "agent": "redirect",
        "failed_operation": None,
        "failure": None,
        **steps,
        "queries": serialize.as_dict(queries) if queries else None,
        "socksproxy": None,
    }


def scrubbed(
    test_keys: Mapping[str, Any], config: GetterConfig, operations: Sequence[Operation]
) -> dict[str, Any]:
    """*test_keys* with the volunteer's addresses made ``[scrubbed]`` wherever a server echoed them."""
    toward = [a for o in operations for a in o.addresses]
    addresses = privacy.volunteer_addresses(known=config.volunteer_addresses, toward=toward)
    text = json.dumps(test_keys, ensure_ascii=False)
    clean = privacy.scrub_text(text, addresses)
    return dict(test_keys) if clean == text else dict(json.loads(clean))


def conclude(
    session: Session,
    *,
    test_name: str,
    test_version: str,
    operations: Sequence[Operation],
    keys: Mapping[str, Any],
    found: Summary,
    context: base.Context,
) -> OONIMeasurement:
    """The measurement: OONI's urlgetter records of *operations*, the test's *keys* and our
    summary (``x_`` keys), the volunteer's addresses scrubbed, in the df-000 envelope; its
    target (the series) is the test's name."""
    test_keys = {**records(operations), **keys, **summary_keys(found)}
    return base.finish(
        test_name=test_name,
        test_version=test_version,
        input=None,
        test_keys=scrubbed(test_keys, session.config, operations),
        summary=found,
        clock=session.started,
        context=context,
        target=test_name,
    )
