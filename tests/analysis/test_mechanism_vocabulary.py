"""The mechanism vocabulary is closed: the analysis gives members only, and every member is given.

The walk runs the decision-table and mechanism tables (and the few paths they leave out: no
control, a switched-off control, throttling, a server-side refusal) through the analysis; the
autouse fixture of :mod:`tests.analysis.conftest` asserts each label is a member.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import pytest

from measurements.patterns.detect import layer_of
from measurements.patterns.findings import LAYERS
from probe.analysis import analyse
from probe.analysis.mechanism import dns_label, http_label, tcp_label, tls_label
from probe.mechanism import ARTEFACTS, DECOY_SNI, QUIC, VPN, Layer, Mechanism, layer_of_label, lookup
from probe.outcome import CONTROL_NOT_CONFIGURED
from probe.steps import failures
from tests.analysis import test_decision_table, test_mechanism
from tests.analysis.builders import (
    HTTP_URL,
    HTTPS_URL,
    IP,
    asn_of,
    connect,
    control,
    fetch,
    fingerprints,
    handshake,
    keys,
    query,
    response,
    run,
)
from tests.analysis.conftest import SEEN
from tests.storage.factories import KINDS, make_measurement

FAILURES = sorted({v for k, v in vars(failures).items() if k.isupper() and isinstance(v, str)})
"""Every failure string of :mod:`probe.steps.failures`."""


def _no_control(
    *steps: object, url: str = HTTPS_URL, control_failure: str = "connection_refused"
) -> Mechanism | None:
    verdict = analyse(
        keys(*steps),
        None,
        control_failure=control_failure,
        url=url,
        asn_of=asn_of,
        fingerprints=fingerprints(),
    )
    return verdict.mechanism


def _walk() -> set[Mechanism | None]:
    """Every label the tables and the extra paths make the analysis give."""
    given: set[Mechanism | None] = set()
    for _, make, _, _ in test_mechanism.CASES:
        measured, ctrl, url = make()
        given.add(run(measured, ctrl, url).mechanism)
    for param in test_decision_table.CASES:
        case = param.values[0]()  # type: ignore[operator]
        given.add(run(case.keys, case.control, case.url).mechanism)
    c = connect(IP, 443)
    given.add(_no_control(query(IP), c, handshake(c, failures.CONNECTION_RESET)))  # tls.reset
    given.add(_no_control(query(IP), c, handshake(c, failures.SSL_UNKNOWN_AUTHORITY)))  # tls.certificate
    plain = connect(IP, 80)
    page = (query(IP), plain, fetch(HTTP_URL, plain))
    given.add(_no_control(*page, url=HTTP_URL, control_failure=CONTROL_NOT_CONFIGURED))  # control.none
    slow = dataclasses.replace(
        fetch(HTTPS_URL, c, failure=failures.GENERIC_TIMEOUT),
        t0=0.3, t=10.3, x_headers_t=0.5, x_body_last_byte_t=10.2, x_body_bytes_received=79_000,
    )  # fmt: skip
    tls_ok = control(tcp={f"{IP}:443": None}, tls={f"{IP}:443": None})
    given.add(run(keys(query(IP), c, handshake(c), slow), tls_ok, HTTPS_URL).mechanism)  # http.throttle
    cloudflare = response(403, b"<html><head><title>Attention Required! | Cloudflare</title></head></html>")
    given.add(run(keys(query(IP), plain, fetch(HTTP_URL, plain, cloudflare)), control()).mechanism)  # server
    return given


def test_the_analysis_gives_every_member_and_nothing_else() -> None:
    given = _walk()
    web = set(Mechanism) - QUIC - VPN - DECOY_SNI  # the other tests' own labels, and the decoy's
    assert given - {None} == web
    assert web <= SEEN  # and each as a member: the conftest checked the type


@pytest.mark.parametrize("classify", [dns_label, tcp_label, tls_label, http_label])
def test_every_failure_maps_to_a_member(classify: Callable[[str | None], Mechanism]) -> None:
    for failure in [*FAILURES, None, "unknown_failure: x"]:
        assert type(classify(failure)) is Mechanism, (classify.__name__, failure)


def test_the_tables_expect_members_only() -> None:
    expected = {case[2] for case in test_mechanism.CASES} - {None}
    assert expected <= set(Mechanism)
    # The storage factories' labels feed the exports' goldens.
    assert {make_measurement(kind=kind).test_keys.mechanism for kind in KINDS} <= set(Mechanism)


def test_layers() -> None:
    assert LAYERS == ("dns", "tcp", "tls", "http") == tuple(Layer)
    for member in Mechanism:
        prefix = member.value.partition(".")[0]
        assert member.layer == (Layer(prefix) if prefix in LAYERS else None), member
    no_layer = {Mechanism.SERVER_BLOCK, Mechanism.OK, Mechanism.DOWN}
    assert {m for m in Mechanism if m.layer is None} == no_layer | QUIC | VPN | {
        Mechanism.CONTROL_NONE,
        Mechanism.CONTROL_UNREACHABLE,
    }
    assert {m for m in Mechanism if m.is_artefact} == ARTEFACTS


@pytest.mark.parametrize(
    ("stored", "member", "layer"),
    [
        ("tls.reset.sni", Mechanism.TLS_RESET_SNI, Layer.TLS),
        ("server.block", Mechanism.SERVER_BLOCK, None),
        (None, None, None),
        # Unknown labels (another version's): no member; the layer their prefix names, if any.
        ("tls.sni_reset", None, Layer.TLS),
        ("ip.drop", None, None),
        ("", None, None),
    ],
)
def test_stored_labels_unknown_ones_included(
    stored: str | None, member: Mechanism | None, layer: Layer | None
) -> None:
    assert lookup(stored) is member
    assert layer_of_label(stored) is layer


@pytest.mark.parametrize(
    ("blocking", "mechanism", "index"),
    [
        ("http-failure", "tls.reset.sni", 2),
        ("http-failure", "server.block", 3),  # names no layer: OONI's blocking decides
        ("tcp_ip", "down", 1),
        ("http-failure", "tls.sni_reset", 2),  # an older label: its prefix's layer
        ("dns", "ip.drop", 0),  # unknown, no layer prefix: blocking decides
        ("false", "ok", len(LAYERS)),
        (None, "tcp.timeout", -1),
    ],
)
def test_patterns_score_at_the_members_layer(blocking: str | None, mechanism: str, index: int) -> None:
    assert layer_of(blocking, mechanism) == index


def test_the_module_is_pure() -> None:
    import probe.mechanism

    imports = [
        line
        for line in inspect.getsource(probe.mechanism).splitlines()
        if line.startswith(("import", "from"))
    ]
    assert imports == ["from __future__ import annotations", "import enum", "from typing import Final"]
