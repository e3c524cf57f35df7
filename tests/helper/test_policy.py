"""The SSRF guard: which addresses the helper may dial."""

from __future__ import annotations

import pytest

from probe.errors import ConfigError
from probe.helper.policy import AddressPolicy


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("10.0.0.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "bogon"),
        ("2002:7f00:1::", "bogon"),  # 6to4 of 127.0.0.1
        ("example.com", "not an IP address"),
    ],
)
def test_refusals(ip: str, reason: str | None) -> None:
    assert AddressPolicy().refusal(ip) == reason


def test_allowed_networks_are_exempt_and_public() -> None:
    policy = AddressPolicy.allowing(["10.20.64.0/18", "127.0.0.0/8"])
    assert policy.is_allowed("10.20.64.10") and policy.is_public("10.20.64.10")
    assert policy.is_allowed("127.0.0.1")
    assert policy.refusal("10.20.0.1") == "private"
    assert not policy.is_public("10.20.0.1")


def test_a_bad_allow_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--allow: invalid network"):
        AddressPolicy.allowing(["10.0.0.0/33"])
