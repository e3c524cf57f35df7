"""Raw-socket tests: the pure packet analysis runs anywhere; ``raw``-marked tests capture on loopback
and need root or CAP_NET_RAW (skipped with the reason otherwise)."""

from __future__ import annotations

import pytest

from probe.raw.capture import capture_problem


@pytest.fixture(autouse=True)
def _skip_without_raw_sockets(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("raw") is not None:
        problem = capture_problem()
        if problem is not None:
            pytest.skip(f"{problem}: run as root, as CI does")
