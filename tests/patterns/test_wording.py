"""Flags in plain sentences: exact wording, blocks and throttling told apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from measurements.patterns.findings import Flag
from measurements.patterns.wording import flag_sentence

T0 = datetime(2024, 2, 17, 9, tzinfo=UTC)


def _flag(kind: str, layer: str, mechanism: str | None, confirmed: str | None = None) -> Flag:
    return Flag(
        kind, "https://x.com/", "AS17557", "PK", layer, mechanism, confirmed,
        T0, T0 + timedelta(days=3), T0 + timedelta(hours=3), 72, 0.9995, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "sentence"),
    [
        (
            _flag("blocking_onset", "tls", "tls.reset.sni"),
            "https://x.com/ blocked (anomaly) on AS17557 (PK) at the TLS layer (tls.reset.sni) from "
            "2024-02-17 09:00 UTC, last seen 2024-02-20 09:00 UTC (72 measurements, confidence 1.000)",
        ),
        (
            _flag("blocking_onset", "http", "http.blockpage", "pk_surf_safely"),
            "https://x.com/ blocked (confirmed: pk_surf_safely) on AS17557 (PK) at the HTTP layer "
            "(http.blockpage) from 2024-02-17 09:00 UTC, last seen 2024-02-20 09:00 UTC "
            "(72 measurements, confidence 1.000)",
        ),
        (
            _flag("blocking_onset", "http", "http.throttle"),
            "https://x.com/ throttled on AS17557 (PK) at the HTTP layer (http.throttle) from 2024-02-17 "
            "09:00 UTC, last seen 2024-02-20 09:00 UTC (72 measurements, confidence 1.000)",
        ),
        (
            # A CDN challenge or a geo-block page: the site refused, not the network.
            _flag("blocking_onset", "http", "server.block"),
            "https://x.com/ refused by the site (not censorship) on AS17557 (PK) at the HTTP layer "
            "(server.block) from 2024-02-17 09:00 UTC, last seen 2024-02-20 09:00 UTC "
            "(72 measurements, confidence 1.000)",
        ),
        (
            # Not "reachable again": the end of a run at one layer says nothing of the others.
            _flag("blocking_end", "tls", None),
            "https://x.com/ no longer blocked on AS17557 (PK) at the TLS layer from 2024-02-17 09:00 UTC "
            "(72 measurements, confidence 1.000)",
        ),
        (
            _flag("blocking_end", "http", "server.block"),
            "https://x.com/ no longer refused by the site on AS17557 (PK) at the HTTP layer (server.block) "
            "from 2024-02-17 09:00 UTC (72 measurements, confidence 1.000)",
        ),
    ],
)
def test_flag_sentences(flag: Flag, sentence: str) -> None:
    assert flag_sentence(flag) == sentence
