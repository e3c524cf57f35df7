"""The ``measurement_uid`` the collector files a submitted measurement under (idempotency's key).

A measurement is stored once per uid, and a re-sent one is acknowledged with the uid it already
has, so the uid must be the same every time the same measurement arrives:

* **It carries one in OONI's form** (``YYYYMMDDhhmmss.ffffff_CC_testname_<16 hex>``, of its own
  ``probe_cc`` and test): kept. reachprobe's probes make it when they measure
  (:func:`probe.serialize.new_measurement_uid`: 64 random bits), so the probe's local row and the
  collector's have the same id, and a re-send after a lost answer, or after the report was
  reopened, is recognised. A stranger could only claim a uid a probe has not uploaded yet by
  guessing its 64 random bits.
* **It carries none** (OONI's probes: their collector assigns the uid on receipt), or one of
  another form: the collector derives it from the content, so that a re-send of the same
  bytes is recognised too: the measurement's start time and network, and 16 hex digits of a
  SHA-256 over the content in canonical JSON (sorted keys) without ``report_id`` (rewritten
  when a probe reopens its report), ``probe_ip`` (replaced before storing) and
  ``measurement_uid``. OONI's collector hashes the body likewise but stamps the receipt time,
  so its ids differ between two submissions of one measurement; ours do not.

The stored document carries the uid it is filed under in ``measurement_uid`` (OONI's published
measurements carry theirs too).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from probe.collector.validate import test_part

OONI_UID: Final = re.compile(r"([0-9]{14}\.[0-9]{6})_([A-Z]{2})_([a-z0-9]{1,64})_[0-9a-f]{16}")
_NOT_HASHED: Final = frozenset({"report_id", "probe_ip", "measurement_uid"})


def measurement_uid(doc: Mapping[str, Any], started: datetime) -> str:
    """The uid to file the (validated) measurement *doc*, started at *started* (UTC), under."""
    cc, test = doc["probe_cc"], test_part(doc["test_name"])
    given = doc.get("measurement_uid")
    if isinstance(given, str):
        found = OONI_UID.fullmatch(given)
        if found is not None and found.group(2) == cc and found.group(3) == test:
            return given
    canonical = json.dumps(
        {k: v for k, v in doc.items() if k not in _NOT_HASHED},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    digest = hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]
    return f"{started:%Y%m%d%H%M%S}.000000_{cc}_{test}_{digest}"
