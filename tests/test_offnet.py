"""The guard that keeps the tests off the Internet (:mod:`tests.offnet`) refuses what it should."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.offnet import guard


@pytest.mark.parametrize("host", ["149.154.167.51", "8.8.8.8", "2001:4860:4860::8888"])
def test_a_global_address_is_refused_before_any_packet(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with guard() as seen, socket.socket(family, socket.SOCK_DGRAM) as udp:
        with pytest.raises(OSError) as refused:
            udp.sendto(b"x", (host, 53))
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            assert tcp.connect_ex((host, 443)) == errno.ENETUNREACH
    assert refused.value.errno == errno.ENETUNREACH
    assert seen[0] == f"sendto {host}" and seen[1:] == [f"connect_ex {host}"]


@pytest.mark.parametrize("host", ["127.0.0.1", "10.7.67.10", "192.0.2.1", "fd00:250::1", "::1"])
def test_loopback_private_and_documentation_space_pass(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with guard() as seen, socket.socket(family, socket.SOCK_DGRAM) as udp:
        try:
            udp.sendto(b"x", (host, 9))
        except OSError as exc:  # no route here is the kernel's answer, not the guard's
            assert "never leave" not in str(exc)
    assert seen == []


def test_the_system_resolver_answers_only_local_names() -> None:
    with guard() as seen:
        with pytest.raises(socket.gaierror) as refused:
            socket.getaddrinfo("e1.whatsapp.net", 443)
        assert socket.getaddrinfo("localhost", 80)
        assert socket.getaddrinfo("127.0.0.1", 80)[0][4][0] == "127.0.0.1"
    assert refused.value.errno == socket.EAI_NONAME
    assert seen == ["getaddrinfo e1.whatsapp.net"]
