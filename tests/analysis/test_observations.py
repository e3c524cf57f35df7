"""How steps become classic observations, and the order the decision walk reads them in."""

from __future__ import annotations

import dataclasses

from probe.analysis.observations import Kind, classic_observations, linear
from tests.analysis.builders import HTTP_URL, HTTPS_URL, IP, IP_OTHER, connect, fetch, handshake, keys, query


def test_a_step_without_a_hop_sorts_last_and_is_never_depth_0() -> None:
    """``depth=None`` (a step measured outside a hop) is OONI's missing depth tag."""
    hopless = dataclasses.replace(connect(IP, 80), depth=None)
    order = [
        o.depth for o in linear(classic_observations(keys(query(IP), hopless, connect(IP, 443, depth=1))))
    ]
    assert order == [1, 0, None]


def test_endpoint_takes_the_kind_and_failure_of_its_last_step() -> None:
    c = connect(IP, 443)
    observations = classic_observations(
        keys(query(IP), c, handshake(c), fetch(HTTPS_URL, c, failure="eof_error"))
    )
    endpoint = [o for o in observations if o.kind is not Kind.DNS]
    assert [(o.kind, o.failure, o.address) for o in endpoint] == [(Kind.HTTP, "eof_error", f"{IP}:443")]
    assert endpoint[0].tls is not None and endpoint[0].tcp is c


def test_http_joins_its_endpoint_by_transaction_id_first() -> None:
    """When the fetch shares the endpoint's transaction id, the id decides, not the address."""
    c = connect(IP, 80)
    shared = dataclasses.replace(fetch(HTTP_URL, c), transaction_id=c.transaction_id, address="elsewhere:80")
    (endpoint,) = [o for o in classic_observations(keys(c, shared)) if o.kind is not Kind.DNS]
    assert (endpoint.kind, endpoint.tcp, endpoint.http) == (Kind.HTTP, c, shared)


def test_classic_http_without_a_recorded_connect_still_counts() -> None:
    c = connect(IP, 443)
    (alone,) = classic_observations(keys(fetch(HTTPS_URL, c)))
    assert (alone.kind, alone.tcp, alone.over_tls, alone.is_final_response) == (Kind.HTTP, None, True, True)


def test_non_classic_steps_and_empty_lookups_are_left_out() -> None:
    other = connect(IP_OTHER, 80, classic=False)
    measured = keys(
        query(IP_OTHER, engine="udp", classic=False),
        query(),  # success without addresses: no observation, as in OONI
        query(failure="generic_timeout_error", engine="doh"),
        other,
        fetch(HTTP_URL, other),
    )
    assert classic_observations(measured) == []


def test_linear_order_depth_then_kind_then_successes_first() -> None:
    ok, refused, timeout = (
        connect(IP, 80),
        connect(IP_OTHER, 80, "connection_refused"),
        connect("1.1.1.1", 80, "timed_out"),
    )
    later = connect(IP, 80, depth=1)
    measured = keys(
        query(IP), timeout, refused, ok, fetch(HTTP_URL, ok), query(IP, depth=1, hostname="www"), later
    )
    order = [(o.depth, o.kind, o.failure) for o in linear(classic_observations(measured))]
    assert order == [
        (1, Kind.TCP, None),
        (1, Kind.DNS, None),
        (0, Kind.HTTP, None),
        (0, Kind.TCP, "connection_refused"),
        (0, Kind.TCP, "timed_out"),
        (0, Kind.DNS, None),
    ]
