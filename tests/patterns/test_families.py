"""Flags over the tests beyond websites: stored and flagged like websites, named as people call them.

The rounds are stored (SQLite), every hour for three days, with documents made as the tests make them
(:func:`probe.nettests.base.finish`), then detected from the store: Telegram blocked on one
network from 8 November on, WireGuard dropped on two networks for six hours (the
10 November 2024 "trial": 16:00-22:00 PKT, 11:00-17:00 UTC), QUIC dropped on the other from 8 November.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from measurements.patterns.detect import detect_store
from measurements.patterns.families import display_target, handshake_of
from measurements.patterns.wording import event_sentence, flag_sentence
from measurements.store.store import open_store
from probe.mechanism import Mechanism
from probe.model import OONIMeasurement, Summary
from probe.nettests.base import Clock, Context, finish

WIREGUARD = "wireguard://example.corp/?address=203.0.113.7:51820"
YOUTUBE_H3 = "http3:https://www.youtube.com/"
START = datetime(2024, 11, 8, 0, 0, tzinfo=UTC)
EVERY = timedelta(hours=1)
ROUNDS = 72  # hourly, 8 November 00:00 to 10 November 23:00 UTC
TRIAL = (datetime(2024, 11, 10, 11, 0, tzinfo=UTC), datetime(2024, 11, 10, 17, 0, tzinfo=UTC))
TELEGRAM_FROM = datetime(2024, 11, 8, 9, 0, tzinfo=UTC)

OK = Summary(blocking=False, accessible=True, mechanism=Mechanism.OK)


def _doc(test_name: str, target: str, at: datetime, asn: str, summary: Summary) -> OONIMeasurement:
    input_ = target if "://" in target else None
    return finish(
        test_name=test_name, test_version="0.0.0", input=input_, test_keys={}, summary=summary,
        clock=Clock(started=at), context=Context(probe_asn=asn, probe_cc="PK"), target=target,
    )  # fmt: skip


def _round(at: datetime, asn: str) -> list[OONIMeasurement]:
    trial = TRIAL[0] <= at < TRIAL[1]
    telegram_blocked = asn == "AS17557" and at >= TELEGRAM_FROM
    dropped = Summary(
        blocking="tcp_ip", accessible=False, mechanism="vpn.timeout", tcp_failure="generic_timeout_error"
    )
    quic_dropped = Summary(blocking="tcp_ip", accessible=False, mechanism=Mechanism.QUIC_TIMEOUT,
                           tls_failure="generic_timeout_error")  # fmt: skip
    telegram = Summary(blocking="tcp_ip", accessible=False, mechanism=Mechanism.TCP_TIMEOUT)
    return [
        _doc("signal", "signal", at, asn, OK),  # something works: not a shutdown
        _doc("telegram", "telegram", at, asn, telegram if telegram_blocked else OK),
        _doc("wireguard", WIREGUARD, at, asn, dropped if trial else OK),
        _doc("http3", YOUTUBE_H3, at, asn, quic_dropped if asn == "AS9541" and at >= TELEGRAM_FROM else OK),
    ]


@pytest.fixture(scope="module")
def sentences(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    path: Path = tmp_path_factory.mktemp("families") / "probe.db"
    with open_store(f"sqlite:///{path}") as store:
        for i in range(ROUNDS):
            at = START + i * EVERY
            for asn in ("AS17557", "AS9541"):
                round_id = store.begin_round(started_at=at, probe_asn=asn, probe_cc="PK")
                store.finish_round(round_id, _round(at, asn), ended_at=at + timedelta(minutes=1))
        found = detect_store(store)
    return [flag_sentence(f) for f in found.flags], [event_sentence(e) for e in found.events]


def test_telegram_is_flagged_on_its_network_by_name(sentences: tuple[list[str], list[str]]) -> None:
    flags, _ = sentences
    (telegram,) = [s for s in flags if s.startswith("Telegram")]
    assert telegram.startswith(
        "Telegram blocked (anomaly) on AS17557 (PK) at the TCP/IP layer (tcp.timeout) "
        "from 2024-11-08 09:00 UTC, last seen 2024-11-10 23:00 UTC"
    )


def test_the_wireguard_trial_is_one_national_event_with_its_hours(
    sentences: tuple[list[str], list[str]],
) -> None:
    flags, events = sentences
    wireguard = [s for s in flags if s.startswith("WireGuard")]
    name, how = "WireGuard (example, 203.0.113.7:51820)", "at the VPN handshake (vpn.timeout)"
    assert [s.split(" from ")[0] for s in wireguard] == [
        f"{name} blocked (anomaly) on AS17557 (PK) {how}",
        f"{name} blocked (anomaly) on AS9541 (PK) {how}",
        f"{name} no longer blocked on AS17557 (PK) {how}",
        f"{name} no longer blocked on AS9541 (PK) {how}",
    ]
    assert (
        "WireGuard (example, 203.0.113.7:51820) blocked nationwide (AS17557, AS9541) by vpn.timeout, "
        "from 2024-11-10 11:00 UTC to 2024-11-10 17:00 UTC"
    ) in events


def test_quic_dropped_reads_as_the_quic_handshake(sentences: tuple[list[str], list[str]]) -> None:
    flags, _ = sentences
    (youtube,) = [s for s in flags if "over HTTP/3" in s]
    assert youtube.startswith(
        "https://www.youtube.com/ over HTTP/3 blocked (anomaly) on AS9541 (PK) at the QUIC handshake "
        "(quic.timeout) from 2024-11-08 09:00 UTC"
    )


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("telegram", "Telegram"),
        ("facebook_messenger", "Facebook Messenger"),
        ("tor", "Tor"),
        ("http3:https://www.youtube.com/", "https://www.youtube.com/ over HTTP/3"),
        ("throughput:https://mmg.whatsapp.net/m.jpg", "Downloads from https://mmg.whatsapp.net/m.jpg"),
        (
            "openvpn://riseup.corp/?address=198.252.153.226:1194&transport=tcp",
            "OpenVPN (riseup, 198.252.153.226:1194/tcp)",
        ),
        ("wireguard://x.corp/", "WireGuard (x)"),
        ("https://x.com/", "https://x.com/"),  # a website is its URL
        ("http3:", "http3:"),  # not a series this version makes: as it is
        ("newtest", "newtest"),
    ],
)
def test_display_names(target: str, words: str) -> None:
    assert display_target(target) == words


def test_handshake_kinds() -> None:
    labels = ("quic.timeout", "vpn.reset", "tls.reset.sni", None)
    assert [handshake_of(label) for label in labels] == ["QUIC handshake", "VPN handshake", None, None]
