"""Every analysis test also proves the mechanism vocabulary closed.

:func:`probe.analysis.analyse` takes its label from :func:`probe.analysis.mechanism.label`; wrapped
here, every label any test of this package makes the analysis give must be a
:class:`probe.mechanism.Mechanism` member (not merely a string that equals one), and
:data:`SEEN` collects them for :mod:`tests.analysis.test_mechanism_vocabulary`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import probe.analysis
from probe.analysis.mechanism import label
from probe.mechanism import Mechanism

SEEN: set[Mechanism] = set()
"""Every label the analysis gave in this test session."""


def checked_label(*args: Any, **kwargs: Any) -> tuple[Mechanism | None, str | None]:
    """:func:`~probe.analysis.mechanism.label`, asserting its answer is of the vocabulary."""
    mechanism, confirmed = label(*args, **kwargs)
    assert mechanism is None or type(mechanism) is Mechanism, f"{mechanism!r} is not a Mechanism member"
    if mechanism is not None:
        SEEN.add(mechanism)
    return mechanism, confirmed


@pytest.fixture(autouse=True)
def closed_vocabulary(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(probe.analysis, "label", checked_label)
    yield
