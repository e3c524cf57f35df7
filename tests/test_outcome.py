"""The outcome for people (probe/outcome.py): one test per row of its table, exact values."""

from __future__ import annotations

import re
from typing import Any

import pytest

import probe.outcome
from probe.outcome import LABELS, Outcome, describe, outcome_of

BASE: dict[str, Any] = {
    "blocking": False,
    "accessible": True,
    "mechanism": "ok",
    "confirmed": None,
    "control_failure": None,
    "network_up": True,
}

ROWS: list[tuple[str, dict[str, Any], Outcome, str]] = [
    ("1", {"mechanism": None, "blocking": None, "accessible": None}, Outcome.NO_VERDICT_NOT_MEASURED,
     "no verdict (not measured)"),
    # OONI's HTTP diff misses the Surf Safely page: (false, true) beside the fingerprint.
    ("2", {"mechanism": "http.blockpage", "confirmed": "cp.b_nat_pak_isp_common_blockpage"},
     Outcome.BLOCKED_CONFIRMED, "blocked (confirmed: cp.b_nat_pak_isp_common_blockpage)"),
    ("3", {"blocking": "http-diff", "accessible": False, "mechanism": "server.block"},
     Outcome.SERVER_REFUSAL, "refused by the site (not censorship)"),
    # Rule 5.1a's (false, true) in a round where nothing connected: the mobile shutdown.
    ("4", {"mechanism": "dns.timeout", "control_failure": "dns_temporary_failure", "network_up": False},
     Outcome.SHUTDOWN, "network shut down"),
    ("5", {"blocking": "dns", "accessible": False, "mechanism": "dns.nxdomain"}, Outcome.BLOCKED_ANOMALY,
     "blocked (anomaly)"),
    ("5-artefact", {"mechanism": "http.blockpage"}, Outcome.BLOCKED_ANOMALY, "blocked (anomaly)"),
    # An HTTPS page over verified TLS, no control configured (OONI's rule 1.1).
    ("6", {"control_failure": "control_not_configured"}, Outcome.REACHABLE, "reachable"),
    ("6-with-control", {}, Outcome.REACHABLE, "reachable"),
    ("7", {"blocking": None, "accessible": None, "mechanism": "tcp.timeout",
           "control_failure": "control_not_configured"},
     Outcome.NO_VERDICT_NO_CONTROL, "no verdict (no control)"),
    # Rule 5.1a's (false, true): a failed lookup no control could check.
    ("7-5.1a", {"mechanism": "dns.nxdomain", "control_failure": "control_not_configured"},
     Outcome.NO_VERDICT_NO_CONTROL, "no verdict (no control)"),
    ("8", {"blocking": None, "accessible": None, "mechanism": "control.unreachable",
           "control_failure": "generic_timeout_error"},
     Outcome.NO_VERDICT_CONTROL, "no verdict (control failed)"),
    ("9", {"accessible": False, "mechanism": "down"}, Outcome.DOWN, "site down"),
    ("10", {"blocking": None, "accessible": None, "mechanism": "down"}, Outcome.NO_VERDICT_UNDECIDED,
     "no verdict (undecided)"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "keys", "outcome", "text"), ROWS, ids=[r[0] for r in ROWS])
def test_each_row_of_the_table(row: str, keys: dict[str, Any], outcome: Outcome, text: str) -> None:
    got = outcome_of(**{**BASE, **keys})
    assert (got, got.value, describe(got, confirmed=keys.get("confirmed"))) == (outcome, outcome.value, text)


def test_the_table_lists_every_row_and_every_outcome_once() -> None:
    doc = probe.outcome.__doc__ or ""
    rules = re.findall(r"^ (\d+) ", doc, flags=re.MULTILINE)
    assert rules == [str(n) for n in range(1, 11)]
    assert {r[0].split("-")[0] for r in ROWS} == set(rules)
    assert {r[2] for r in ROWS} == set(Outcome) == set(LABELS)


def test_stored_blocking_text_false_is_false() -> None:
    """The store keeps ``blocking`` as text: ``"false"`` reads like ``False``."""
    assert outcome_of(**{**BASE, "blocking": "false"}) is Outcome.REACHABLE


def test_a_confirmed_blockpage_wins_over_the_shutdown() -> None:
    """The censor's own page reached during a shutdown is proof the network carried it."""
    keys = {**BASE, "mechanism": "dns.blockpage", "confirmed": "lab.isp_dns_blockpage", "network_up": False}
    assert outcome_of(**keys) is Outcome.BLOCKED_CONFIRMED


def test_unknown_heartbeat_decides_nothing() -> None:
    assert outcome_of(**{**BASE, "network_up": None}) is Outcome.REACHABLE
