"""The outcome for people: one answer per measurement, derived here and nowhere else.

OONI's keys (``blocking``, ``accessible``, …) stay exactly OONI's for analysts, and
``mechanism`` says how; but a person reading a table, a status line or a report needs one
answer, and it must never contradict the evidence (a confirmed blockpage is not "reachable",
an NXDOMAIN the control did not get is not "reachable", a network shut down is not
"reachable"). :func:`outcome_of` maps the stored keys to that answer, first rule first:

=====  ============================================  ==========================  =============================
 rule  when                                          outcome                     people read
=====  ============================================  ==========================  =============================
 1     nothing was measured (no mechanism)           ``no_verdict.not_measured`` no verdict (not measured)
 2     a censorship fingerprint matched              ``blocked.confirmed``       blocked (confirmed: NAME)
       (``x_confirmed`` names it)
 3     mechanism ``server.block`` (a CDN challenge,  ``server.refusal``          refused by the site (not
       a geo-block page served by the site)                                      censorship)
 4     the round's heartbeat says the network was    ``shutdown``                network shut down
       down (no TCP connect succeeded anywhere)
 5     ``blocking`` is ``dns``, ``tcp_ip``,          ``blocked.anomaly``         blocked (anomaly)
       ``http-failure`` or ``http-diff``, or the
       mechanism is a blocking artefact
       (``dns.blockpage``, ``http.blockpage``,
       ``http.redirect``) without a censorship
       fingerprint
 6     ``blocking`` false, ``accessible`` true,      ``reachable``               reachable
       mechanism ``ok``: the page came and
       matched the control's, or came over
       verified TLS (OONI's rule 1.1, which
       needs no control)
 7     no control was configured                     ``no_verdict.no_control``   no verdict (no control)
 8     the control failed (unreachable, an error,    ``no_verdict.control``      no verdict (control failed)
       an invalid answer)
 9     ``blocking`` false, ``accessible`` false      ``down``                    site down
       (the control failed the same way)
 10    anything else (``blocking`` null with a       ``no_verdict.undecided``    no verdict (undecided)
       control that answered)
=====  ============================================  ==========================  =============================

Rule 2 before rule 4: a blockpage is proof the network carried it. Rule 5 before rules 7-8:
OONI decides DNS anomalies without a complete control (and a blockpage is proof on its own).
Rule 6 before rules 7-8: a page over verified TLS is the site's whatever the control did; but
OONI's other ``(false, true)`` without a control, rule 5.1a (a failed lookup nothing could
check, mechanism ``dns.*``), is no reading at all and falls to rules 7-8.
Pure: no I/O, no network imports, so the data side (``measurements``) uses it too.

The mechanism is one of :class:`probe.mechanism.Mechanism` (the closed vocabulary); a label
read from storage may be any text, and one this version does not know matches only the rules
that need no particular mechanism (rules 4, 5 by ``blocking``, and 7 to 10).
"""

from __future__ import annotations

import enum
from typing import Final

from probe.mechanism import ARTEFACTS, Mechanism
from probe.model import WebConnectivityTestKeys


class Outcome(enum.StrEnum):
    """The closed vocabulary of outcomes; the value is what CSV and ``--json`` carry."""

    BLOCKED_CONFIRMED = "blocked.confirmed"
    BLOCKED_ANOMALY = "blocked.anomaly"
    REACHABLE = "reachable"
    DOWN = "down"
    SERVER_REFUSAL = "server.refusal"
    SHUTDOWN = "shutdown"
    NO_VERDICT_NO_CONTROL = "no_verdict.no_control"
    NO_VERDICT_CONTROL = "no_verdict.control"
    NO_VERDICT_NOT_MEASURED = "no_verdict.not_measured"
    NO_VERDICT_UNDECIDED = "no_verdict.undecided"

    @property
    def is_blocked(self) -> bool:
        """Blocked, confirmed or as an anomaly (what "failing targets" lists first)."""
        return self in (Outcome.BLOCKED_CONFIRMED, Outcome.BLOCKED_ANOMALY)


LABELS: Final[dict[Outcome, str]] = {
    Outcome.BLOCKED_CONFIRMED: "blocked (confirmed)",
    Outcome.BLOCKED_ANOMALY: "blocked (anomaly)",
    Outcome.REACHABLE: "reachable",
    Outcome.DOWN: "site down",
    Outcome.SERVER_REFUSAL: "refused by the site (not censorship)",
    Outcome.SHUTDOWN: "network shut down",
    Outcome.NO_VERDICT_NO_CONTROL: "no verdict (no control)",
    Outcome.NO_VERDICT_CONTROL: "no verdict (control failed)",
    Outcome.NO_VERDICT_NOT_MEASURED: "no verdict (not measured)",
    Outcome.NO_VERDICT_UNDECIDED: "no verdict (undecided)",
}
"""What a person reads for each outcome."""

ANOMALY_BLOCKING: Final = frozenset({"dns", "tcp_ip", "http-failure", "http-diff"})
"""OONI ``blocking`` values that say the probe saw what the control did not."""
ARTEFACT_MECHANISMS: Final = ARTEFACTS
"""Mechanisms that name something the censor served: blocking even without a diff."""
CONTROL_NOT_CONFIGURED: Final = "control_not_configured"
"""``control_failure`` when no control was configured (the probe's, not OONI's)."""


def outcome_of(
    *,
    blocking: str | bool | None,
    accessible: bool | None,
    mechanism: str | None,
    confirmed: str | None,
    control_failure: str | None,
    network_up: bool | None = None,
) -> Outcome:
    """The outcome of one measurement (see the module's table).

    Args:
        blocking: OONI's ``blocking`` (``False`` or ``"false"``, a string, or ``None``).
        accessible: OONI's ``accessible``.
        mechanism: reachprobe's mechanism label (``None``: nothing was measured); a
            :class:`~probe.mechanism.Mechanism`, or stored text (see the module docstring).
        confirmed: the censorship fingerprint's name, when one matched.
        control_failure: the measurement's ``control_failure``.
        network_up: the round's heartbeat: ``False`` when no TCP connect succeeded in the
            whole round; ``None`` when unknown.
    """
    if mechanism is None:
        return Outcome.NO_VERDICT_NOT_MEASURED
    if confirmed:
        return Outcome.BLOCKED_CONFIRMED
    if mechanism == Mechanism.SERVER_BLOCK:
        return Outcome.SERVER_REFUSAL
    if network_up is False:
        return Outcome.SHUTDOWN
    verdict = "false" if blocking is False else blocking
    if verdict in ANOMALY_BLOCKING or mechanism in ARTEFACT_MECHANISMS:
        return Outcome.BLOCKED_ANOMALY
    if verdict == "false" and accessible and mechanism == Mechanism.OK:
        return Outcome.REACHABLE
    if control_failure == CONTROL_NOT_CONFIGURED:
        return Outcome.NO_VERDICT_NO_CONTROL
    if control_failure is not None:
        return Outcome.NO_VERDICT_CONTROL
    if verdict == "false" and accessible is False:
        return Outcome.DOWN
    return Outcome.NO_VERDICT_UNDECIDED


def describe(outcome: Outcome, *, confirmed: str | None = None) -> str:
    """What a person reads: the label, with the fingerprint's name for a confirmed block."""
    if outcome is Outcome.BLOCKED_CONFIRMED and confirmed:
        return f"blocked (confirmed: {confirmed})"
    return LABELS[outcome]


def measurement_outcome(keys: WebConnectivityTestKeys, *, network_up: bool | None = None) -> Outcome:
    """:func:`outcome_of` for the test keys of one measurement (*network_up*: its round's heartbeat)."""
    return outcome_of(
        blocking=keys.blocking,
        accessible=keys.accessible,
        mechanism=keys.mechanism,
        confirmed=keys.confirmed,
        control_failure=keys.control_failure,
        network_up=network_up,
    )
