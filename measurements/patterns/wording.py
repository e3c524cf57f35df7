"""Flags and events as plain sentences and as JSON-ready dicts (shared by ``probe flags`` and the report)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from measurements.patterns.families import display_target, handshake_of
from measurements.patterns.findings import Event, Flag
from probe.isotime import iso_utc
from probe.mechanism import Mechanism
from probe.outcome import describe, outcome_of

_LAYER_NAMES = {"dns": "DNS", "tcp": "TCP/IP", "tls": "TLS", "http": "HTTP"}


def when(t: datetime | None) -> str:
    """``2024-02-17 09:00 UTC``; ``—`` for none."""
    return "—" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def flag_state(f: Flag) -> str:
    """What people read for the state an onset flag reports, in :mod:`probe.outcome`'s words.

    ``blocked (anomaly)``, ``blocked (confirmed: NAME)``, ``refused by the site (not
    censorship)`` for a server-side refusal, and ``throttled`` for shaping, which is not a block:
    the site loads, too slowly to be used.
    """
    if f.mechanism == Mechanism.HTTP_THROTTLE:
        return "throttled"
    # An onset is, by construction, a run of measurements OONI called blocking at this layer.
    outcome = outcome_of(
        blocking="http-failure",
        accessible=False,
        mechanism=f.mechanism or "",
        confirmed=f.confirmed,
        control_failure=None,
    )
    return describe(outcome, confirmed=f.confirmed)


def flag_sentence(f: Flag) -> str:
    """One sentence: what, where, how, since when, on how much evidence.

    The target is named as people call it (:func:`~measurements.patterns.families.display_target`:
    ``Telegram``, ``WireGuard (…)``, ``… over HTTP/3``); a mechanism that names a protocol's
    handshake rather than a connection layer (``quic.*``, ``vpn.*``) says so instead of the layer
    it is scored at.
    """
    how = handshake_of(f.mechanism) or (_LAYER_NAMES.get(f.layer, f.layer) + " layer")
    if f.mechanism:
        how += f" ({f.mechanism})"
    evidence = f"{f.n_measurements} measurements, confidence {f.confidence:.3f}"
    state = flag_state(f)
    if f.kind == "blocking_onset":
        return (
            f"{display_target(f.target)} {state} on {f.probe_asn} ({f.probe_cc}) at the {how} from "
            f"{when(f.first_evidence_at)}, last seen {when(f.last_evidence_at)} ({evidence})"
        )
    # The end of a run at one layer: not "reachable", which only the next measurement's outcome
    # can say (the target may now fail at another layer, or be down).
    ended = "blocked" if state.startswith("blocked") else state.removesuffix(" (not censorship)")
    return (
        f"{display_target(f.target)} no longer {ended} on {f.probe_asn} ({f.probe_cc}) at the {how} from "
        f"{when(f.first_evidence_at)} ({evidence})"
    )


def event_sentence(e: Event) -> str:
    """One sentence per event."""
    where = ", ".join(e.asns)
    scope = "nationwide" if e.scope == "national" else "on one network"
    span = f"from {when(e.started_at)} " + (f"to {when(e.ended_at)}" if e.ended_at else "(ongoing)")
    if e.kind == "shutdown":
        return f"Network shutdown {scope} ({where}): everything failed, the control included, {span}"
    what = ", ".join(display_target(t) for t in e.targets)
    mechanisms = f" by {', '.join(e.mechanisms)}" if e.mechanisms else ""
    if e.kind == "multi_platform":
        return f"{len(e.targets)} platforms blocked together {scope} ({where}){mechanisms}, {span}: {what}"
    return f"{what} blocked {scope} ({where}){mechanisms}, {span}"


def flag_dict(f: Flag) -> dict[str, Any]:
    """JSON-ready: times as ISO 8601 UTC, ``event`` as a 1-based event id."""
    return {
        "kind": f.kind, "target": f.target, "probe_asn": f.probe_asn, "probe_cc": f.probe_cc,
        "layer": f.layer, "mechanism": f.mechanism, "confirmed": f.confirmed,
        "first_evidence_at": iso_utc(f.first_evidence_at),
        "last_evidence_at": iso_utc(f.last_evidence_at), "detected_at": iso_utc(f.detected_at),
        "n_measurements": f.n_measurements, "confidence": f.confidence,
        "event_id": None if f.event is None else f.event + 1, "sentence": flag_sentence(f),
    }  # fmt: skip


def event_dict(e: Event, index: int) -> dict[str, Any]:
    """JSON-ready; *index* is the event's position (its id is ``index + 1``)."""
    return {
        "id": index + 1, "kind": e.kind, "scope": e.scope, "started_at": iso_utc(e.started_at),
        "ended_at": iso_utc(e.ended_at), "asns": list(e.asns),
        "targets": list(e.targets), "layers": list(e.layers), "mechanisms": list(e.mechanisms),
        "n_flags": e.n_flags, "sentence": event_sentence(e),
    }  # fmt: skip
