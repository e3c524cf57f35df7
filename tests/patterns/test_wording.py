"""Flags in plain sentences: exact wording, blocks and throttling told apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from measurements.findings import Flag
from measurements.wording import flag_sentence

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
            "https://x.com/ blocked on AS17557 (PK) at the TLS layer (tls.reset.sni) from 2024-02-17 "
            "09:00 UTC, last seen blocked 2024-02-20 09:00 UTC (72 measurements, confidence 1.000)",
        ),
        (
            _flag("blocking_onset", "http", "http.blockpage", "pk_surf_safely"),
            "https://x.com/ blocked on AS17557 (PK) at the HTTP layer (http.blockpage), confirmed by "
            "fingerprint pk_surf_safely, from 2024-02-17 09:00 UTC, last seen blocked 2024-02-20 "
            "09:00 UTC (72 measurements, confidence 1.000)",
        ),
        (
            _flag("blocking_onset", "http", "http.throttle"),
            "https://x.com/ throttled on AS17557 (PK) at the HTTP layer (http.throttle) from 2024-02-17 "
            "09:00 UTC, last seen throttled 2024-02-20 09:00 UTC (72 measurements, confidence 1.000)",
        ),
        (
            _flag("blocking_end", "tls", None),
            "https://x.com/ reachable again on AS17557 (PK) at the TLS layer from 2024-02-17 09:00 UTC "
            "(72 measurements, confidence 1.000)",
        ),
    ],
)
def test_flag_sentences(flag: Flag, sentence: str) -> None:
    assert flag_sentence(flag) == sentence
