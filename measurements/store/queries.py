"""The SELECTs shared by the store, the export and the status and report commands.

Each returns a statement whose columns are one of :mod:`measurements.store.rows`' types, over the
tables of :mod:`measurements.store.tables`; running it is the store's job
(:meth:`~measurements.store.store.Store.stream`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, func, null, or_, select
from sqlalchemy.sql import Select

from measurements.store.tables import MeasurementRecord, Target

AnySelect = Select[*tuple[Any, ...]]
"""A SELECT of any columns (SQLAlchemy 2.1's variadic typing)."""


def normalize_asn(asn: str | int) -> str:
    """``1234``, ``"1234"``, ``"as1234"`` → ``"AS1234"`` (OONI's spelling, as stored)."""
    text = str(asn).strip().upper().removeprefix("AS")
    if not text.isdigit():
        raise ValueError(f"not an ASN: {asn!r} (expected AS1234 or 1234)")
    return f"AS{int(text)}"


def measurement_query(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    asn: str | int | None = None,
    with_body: bool = False,
) -> AnySelect:
    """The SELECT behind :meth:`~measurements.store.store.Store.iter_measurements`, time-ordered.

    Its columns are :class:`~measurements.store.rows.MeasurementRow`'s, in order.

    Raises:
        ValueError: *asn* is not an ASN.
    """
    m, t = MeasurementRecord, Target
    stmt = select(
        m.measurement_uid, m.measured_at, m.input, t.category_code, t.category_description,
        t.date_added, t.source, t.notes, m.probe_asn, m.probe_cc, m.runtime_s, m.outcome,
        m.blocking, m.accessible, m.mechanism, m.confirmed, m.dns_consistency, m.dns_failure,
        m.tcp_failure, m.tls_failure, m.http_failure, m.control_failure, m.round_id,
        m.body if with_body else null().label("body"),
    ).join_from(m, t, m.target_id == t.id)  # fmt: skip
    if since is not None:
        stmt = stmt.where(m.measured_at >= since)
    if until is not None:
        stmt = stmt.where(m.measured_at < until)
    if target is not None:
        stmt = stmt.where(m.target_id == select(t.id).where(t.url == target).scalar_subquery())
    if asn is not None:
        stmt = stmt.where(m.probe_asn == normalize_asn(asn))
    return stmt.order_by(m.measured_at, m.id)


FAILING_OUTCOMES: Final = ("blocked.confirmed", "blocked.anomaly", "shutdown", "down", "server.refusal")
"""Outcomes that make a target "failing" whatever its failure columns say."""


def failing_query(*, since: datetime | None = None, only_failing: bool = True) -> AnySelect:
    """The SELECT behind :meth:`~measurements.store.store.Store.failing_targets`.

    Its columns are :class:`~measurements.store.rows.FailingTarget`'s. The latest measurement of
    each (target, network) is found on the ``(target_id, probe_asn, measured_at)`` index
    alone, so this stays fast on millions of rows. Failing means by the stored ``outcome``:
    blocked (confirmed or anomaly), network shut down, site down or refused by the site; a
    no-verdict outcome only when a lookup or the fetch failed (a page that loaded without a
    control has not failed). Never ``reachable``. With *only_failing* false: the latest
    measurement of every (target, network).
    """
    m, t = MeasurementRecord, Target
    groups = select(m.target_id, m.probe_asn, func.max(m.measured_at).label("at")).group_by(
        m.target_id, m.probe_asn
    )
    if since is not None:
        groups = groups.where(m.measured_at >= since)
    g = groups.subquery()
    at_latest = and_(m.target_id == g.c.target_id, m.probe_asn == g.c.probe_asn, m.measured_at == g.c.at)
    latest = (
        select(func.max(m.id)).join(g, at_latest).group_by(m.target_id, m.probe_asn)
    )  # ties: last written
    step_failed = or_(m.dns_failure.is_not(None), m.http_failure.is_not(None))
    failed = or_(m.outcome.in_(FAILING_OUTCOMES), and_(m.outcome.startswith("no_verdict."), step_failed))
    # OONI's two experiment failures, not a sibling endpoint's (an IPv6 address the volunteer
    # cannot reach is no reason beside a blockpage).
    failure = func.coalesce(m.dns_failure, m.http_failure).label("failure")
    stmt = select(
        t.url, t.category_code, m.probe_asn, m.probe_cc, m.measured_at, m.outcome, m.blocking, m.accessible,
        m.mechanism, m.confirmed, failure,
    ).join_from(m, t, m.target_id == t.id).where(m.id.in_(latest))  # fmt: skip
    if only_failing:
        stmt = stmt.where(failed)
    return stmt.order_by(t.url, m.probe_asn)
