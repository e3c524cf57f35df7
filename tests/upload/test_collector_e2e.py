"""The uploader against ``probe collector serve`` itself: HTTPS with the operator's CA, tokens."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from measurements.store.store import Store, open_store
from measurements.store.uploads import StoreUploads, counts
from probe.upload import upload_pending
from tests.upload.collectorproc import CollectorProcess
from tests.upload.helpers import fill, now, settings


@pytest.fixture
def collector(tmp_path: Path, ca: trustme.CA) -> Iterator[CollectorProcess]:
    """A collector on HTTPS (a certificate for 127.0.0.1 from the test CA) accepting one token."""
    cert = tmp_path / "collector.pem"
    issued = ca.issue_cert("127.0.0.1")
    cert.write_bytes(b"".join(blob.bytes() for blob in (*issued.cert_chain_pems, issued.private_key_pem)))
    tokens = tmp_path / "tokens"
    tokens.write_text("fleet-token-0123456789abcdef\n")
    extra = ("--tls-cert", str(cert), "--tokens", str(tokens))
    process = CollectorProcess(f"sqlite:///{tmp_path / 'collector.sqlite3'}", tmp_path / "log", extra=extra,
                               scheme="https")  # fmt: skip
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'probe.sqlite3'}") as s:
        yield s


def test_https_with_a_token_uploads_everything_once(
    collector: CollectorProcess, store: Store, ca_file: Path, tmp_path: Path
) -> None:
    stored = fill(store, rounds=2, per_round=15)
    config = settings(collector.url, token="fleet-token-0123456789abcdef", ca_file=ca_file)
    summary = asyncio.run(upload_pending(StoreUploads(store), config))
    assert (summary.uploaded, summary.failed, summary.reports_opened) == (30, 0, 2)
    again = asyncio.run(upload_pending(StoreUploads(store), config, retry_all=True))
    assert again.uploaded == 0
    with sqlite3.connect(tmp_path / "collector.sqlite3") as db:
        rows = db.execute("SELECT measurement_uid, probe_asn FROM measurements").fetchall()
        reports = db.execute("SELECT count(*) FROM rounds WHERE report_id IS NOT NULL").fetchone()
    assert sorted(rows) == sorted((m.measurement_uid, "AS17557") for m in stored)
    assert reports == (2,)


@pytest.mark.parametrize(
    ("token", "error"),
    [("not-the-fleet-token", "http_status_401"), (None, "http_status_401")],
)
def test_a_refused_token_is_a_failure_with_its_back_off(
    collector: CollectorProcess, store: Store, ca_file: Path, token: str | None, error: str
) -> None:
    fill(store, rounds=1, per_round=3)
    summary = asyncio.run(
        upload_pending(StoreUploads(store), settings(collector.url, token=token, ca_file=ca_file))
    )
    assert (summary.uploaded, summary.failed, summary.stopped) == (0, 1, error)
    left = counts(store, now=now())
    assert (left.pending, left.failed, left.last_error) == (2, 1, error)


def test_a_collector_whose_certificate_is_not_trusted_is_not_sent_anything(
    collector: CollectorProcess, store: Store
) -> None:
    fill(store, rounds=1, per_round=2)
    config = settings(collector.url, token="fleet-token-0123456789abcdef")  # the system store
    summary = asyncio.run(upload_pending(StoreUploads(store), config))
    assert (summary.uploaded, summary.stopped) == (0, "ssl_unknown_authority")
