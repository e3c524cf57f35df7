"""A synthetic store that reads as a probe stores it: the dashboard's tests, benchmark and screenshots.

:func:`measurements.patterns.synthetic.write` stores the summary columns the patterns read,
and leaves ``mechanism`` empty where a page loaded or the network was down; a probe stores
``ok`` there, or the failure's label, and the outcome follows from it
(:func:`measurements.store.summary.outcome_column`). :func:`write_store` fills those in and
re-derives each row's outcome with the store's own function, so the now page, the grid and the
counts show what a volunteer's store would. It also stores a few measurements with their full
OONI JSON (one confirmed blockpage among them) so that measurement pages have steps to show.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from sqlalchemy import and_, select, text, update

from measurements.patterns.synthetic import SyntheticConfig, write
from measurements.store.installation import Installation
from measurements.store.store import Store, open_store
from measurements.store.summary import outcome_column
from measurements.store.tables import MeasurementRecord, Round, Target
from tests.storage.factories import make_measurement

CATEGORIES = {
    "https://x.com/": "GRP",
    "https://www.facebook.com/": "GRP",
    "https://www.instagram.com/": "GRP",
    "https://www.youtube.com/": "MMED",
    "https://www.tiktok.com/": "GRP",
    "https://web.whatsapp.com/": "COMM",
    "https://telegram.org/": "COMM",
    "https://www.wikipedia.org/": "CULTR",
    "https://www.dawn.com/": "NEWS",
    "https://www.bbc.com/urdu": "NEWS",
}


def open_synthetic(db: Path, config: SyntheticConfig | None = None) -> Store:
    """A store at *db* holding *config*'s rounds (default: :meth:`SyntheticConfig.small`), realistic."""
    store = open_store(f"sqlite:///{db}", installation=Installation.load(db.parent))
    write_store(store, config or SyntheticConfig.small())
    return store


def write_store(store: Store, config: SyntheticConfig) -> int:
    """Write *config* into the empty *store*, then fill in mechanisms, outcomes, categories and evidence."""
    n = write(store, config)
    m, r = MeasurementRecord, Round
    with store.transaction("make the synthetic rounds realistic") as conn:
        down_rounds = select(r.id).where(r.network_up.is_(False))
        conn.execute(
            update(m)
            .where(m.mechanism.is_(None), m.round_id.in_(down_rounds))
            .values(mechanism="dns.timeout")
        )
        conn.execute(update(m).where(m.mechanism.is_(None), m.accessible.is_(True)).values(mechanism="ok"))
        kinds = conn.execute(
            select(m.blocking, m.accessible, m.mechanism, m.confirmed, m.control_failure, r.network_up)
            .join(r, m.round_id == r.id)
            .distinct()
        ).all()
        for blocking, accessible, mechanism, confirmed, control_failure, network_up in kinds:
            row = {
                "blocking": blocking,
                "accessible": accessible,
                "mechanism": mechanism,
                "confirmed": confirmed,
                "control_failure": control_failure,
            }
            outcome = outcome_column(row, network_up=network_up).value
            same = and_(
                *(
                    getattr(m, k).is_(v) if v is None or isinstance(v, bool) else getattr(m, k) == v
                    for k, v in row.items()
                )
            )
            rounds = select(r.id).where(
                r.network_up.is_(None) if network_up is None else r.network_up == network_up
            )
            conn.execute(update(m).where(same, m.round_id.in_(rounds)).values(outcome=outcome))
        for url, code in CATEGORIES.items():
            conn.execute(update(Target).where(Target.url == url).values(category_code=code))
        if conn.dialect.name == "postgresql":  # write() gave ids itself: move the sequences past them
            for table in ("rounds", "targets"):
                top = f"(SELECT max(id) FROM {table})"
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {top})"))
    _add_evidence(store, config)
    return n


def _add_evidence(store: Store, config: SyntheticConfig) -> None:
    """A last round on PTCL with full OONI JSON: a confirmed blockpage, an SNI reset, DNS, loaded pages."""
    at = config.start + timedelta(days=config.days, minutes=10)
    kinds = {
        "https://x.com/": "sni",
        "https://www.dawn.com/": "blockpage",
        "https://telegram.org/": "dns",
        "https://www.wikipedia.org/": "ok",
        "https://www.youtube.com/": "ok",
    }
    batch = [
        dataclasses.replace(
            make_measurement(9000 + i, kind=kind, url=url, at=at + timedelta(seconds=i), network_name="PTCL"),
            measurement_uid=f"evidence-{i}",
        )
        for i, (url, kind) in enumerate(kinds.items())
    ]
    store.finish_round(
        store.begin_round(started_at=at, probe_asn="AS17557", probe_cc="PK", n_targets=len(batch)),
        batch,
        ended_at=at + timedelta(minutes=1),
    )
