"""The one place where measurement data becomes JSON-ready dictionaries (OONI data format).

The model (:mod:`probe.model`) keeps typed values; this module writes them as OONI's data
formats spell them (``ooni/spec`` df-000-base … df-008-netevents, ts-017), so that OONI's own
tooling (``oonidata``) loads our measurements as they are:

- dataclasses become dicts with their field names; tuples become lists; ``bytes`` become
  OONI's MaybeBinaryData (a UTF-8 string when the bytes decode, else
  ``{"format": "base64", "data": …}``); every ``headers_list`` gains a ``headers`` map beside
  it (first value wins, as OONI's); DNS answers omit empty address fields;
- a query's ``rcode`` is the RFC 1035 number (``NOERROR`` 0, ``NXDOMAIN`` 3), ``null`` when
  no reply was parsed;
- ``peer_certificates`` entries are BinaryData (base64 DER, leaf first); our readable summary
  of each goes beside them, in ``x_peer_certificates_info``;
- a request writes OONI's ``body``, ``body_is_truncated``, ``tor`` and ``x_transport``; a
  transaction without a response writes OONI's empty response (``code`` 0), never ``null``;
- our own keys carry OONI's ``x_`` extension prefix: ``test_keys.mechanism`` and
  ``confirmed`` become ``x_mechanism`` and ``x_confirmed`` (a fingerprint's name), a
  response's ``body_length`` and ``title`` become ``x_body_length`` and ``x_title``. Our
  extension fields (``x_…``) are omitted when ``None``: a record without that evidence reads
  exactly as OONI's format, and adding such a field never changes the JSON of data that
  lacks it;
- a step's ``tags`` are OONI's strings made from its typed fields (:func:`ooni_tags`):
  ``depth=N`` for its hop, ``classic`` when the classic analysis reads it, then its free-form
  tags; :func:`parse_tags` is the one reader of them, for whoever reads the JSON back;
- times (``measurement_start_time``, ``test_start_time``: aware ``datetime`` in the model) are
  OONI's ``YYYY-MM-DD hh:mm:ss`` in UTC (:func:`ooni_time`);
- the envelope gains ``test_helpers`` (the control used, or ``null``), ``extensions``, and the
  test keys Web Connectivity 0.5.28 always writes (``agent``, ``client_resolver``,
  ``retries``, ``socksproxy``, ``network_events``, derived from the steps' own times).

It also makes OONI's identifiers (:func:`new_report_id`, :func:`new_measurement_uid`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from probe.model import (
    OONI_TIME_FORMAT,
    DNSAnswer,
    DNSQuery,
    HTTPRequest,
    HTTPResponse,
    HTTPTransaction,
    Measurement,
    OONIMeasurement,
    PeerCertificate,
    Summary,
    TCPConnect,
    TLSHandshake,
    WebConnectivityTestKeys,
)

RCODES: Final = {
    "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
    "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10, "BADVERS": 16,
}  # fmt: skip
"""RFC 1035 / IANA DNS RCODEs by the names dnspython gives them (df-002-dnst ``rcode``)."""

RENAMED: Final[dict[type, dict[str, str]]] = {
    WebConnectivityTestKeys: {"mechanism": "x_mechanism", "confirmed": "x_confirmed"},
    HTTPResponse: {"body_length": "x_body_length", "title": "x_title"},
}
"""Model fields that are ours, not OONI's: the JSON key carries OONI's ``x_`` prefix."""

EMPTY_RESPONSE: Final = {"body": "", "body_is_truncated": False, "code": 0, "headers_list": [], "headers": {}}
"""What OONI writes for a round trip that got no response (df-001-httpt: not nullable)."""

NOT_TOR: Final = {"exit_ip": None, "exit_name": None, "is_tor": False}
EXTENSIONS: Final = {"dnst": 0, "httpt": 0, "netevents": 0, "tcpconnect": 0, "tlshandshake": 0, "tunnel": 0}
"""df-000-base ``extensions``: the sub-formats (and their versions) the test keys use."""

GOARCH: Final = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "i386": "386", "i686": "386", "x86": "386", "armv7l": "arm", "armv6l": "arm", "arm": "arm",
}  # fmt: skip
"""``platform.machine()`` → the Go architecture name df-000-base ``annotations`` uses."""


Step = DNSQuery | TCPConnect | TLSHandshake | HTTPTransaction
"""The step records whose hop and classic flag become OONI tags."""
STEP_TYPES: Final = (DNSQuery, TCPConnect, TLSHandshake, HTTPTransaction)
TAG_FIELDS: Final = frozenset({"depth", "classic"})
"""Step fields written only inside ``tags``, never as keys of their own."""
CLASSIC_TAG: Final = "classic"
DEPTH_TAG_PREFIX: Final = "depth="
_DEPTH_VALUE: Final = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class StepTags:
    """What OONI ``tags`` say about a step: :func:`parse_tags`' answer."""

    depth: int | None
    """The ``depth=N`` hop; ``None`` without such a tag (as OONI's minipipeline reads it)."""
    classic: bool
    tags: tuple[str, ...]
    """The other (free-form) tags, in order."""


def ooni_tags(step: Step) -> list[str]:
    """OONI's ``tags`` of *step*: ``depth=N`` and ``classic`` from its fields, then its own tags.

    The order is the one the probe has always written: a lookup's ``classic`` before its
    ``depth=N``, an endpoint step's after it (OONI's readers do not care; our goldens do).
    """
    depth = [f"{DEPTH_TAG_PREFIX}{step.depth}"] if step.depth is not None else []
    classic = [CLASSIC_TAG] if step.classic else []
    first, second = (classic, depth) if isinstance(step, DNSQuery) else (depth, classic)
    return [*first, *second, *step.tags]


def parse_tags(tags: Iterable[str] | None) -> StepTags:
    """Read OONI ``tags`` (a step of the JSON, ours or another probe's) back into fields.

    The first ``depth=N`` tag with a decimal *N* gives the hop (a malformed one stays a
    free-form tag); ``classic`` anywhere sets ``classic``; ``None`` reads as no tags. The
    one reader of tags: the lab and whoever reads stored JSON use it, so a step without a
    depth means the same (``None``: no hop) everywhere.
    """
    depth: int | None = None
    classic = False
    rest: list[str] = []
    for tag in tags or ():
        value = tag.removeprefix(DEPTH_TAG_PREFIX)
        if depth is None and tag.startswith(DEPTH_TAG_PREFIX) and _DEPTH_VALUE.fullmatch(value):
            depth = int(value)
        elif tag == CLASSIC_TAG:
            classic = True
        else:
            rest.append(tag)
    return StepTags(depth, classic, tuple(rest))


def ooni_time(when: datetime) -> str:
    """*when* as df-000-base writes times: ``YYYY-MM-DD hh:mm:ss`` in UTC.

    A naive *when* is taken to be UTC already (the store's convention, :mod:`probe.isotime`'s).
    """
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime(OONI_TIME_FORMAT)


def as_dict(obj: Any) -> Any:
    """Return *obj* (a model dataclass, or a container of them) as JSON-ready data."""
    if isinstance(obj, Measurement):
        return _measurement(obj)
    if isinstance(obj, DNSAnswer):
        return {
            f.name: as_dict(v) for f in dataclasses.fields(obj) if (v := getattr(obj, f.name)) is not None
        }
    if isinstance(obj, PeerCertificate):
        # DER is binary by nature: always base64, even when the bytes happen to decode.
        return {"data": base64.b64encode(obj.data).decode("ascii"), "format": "base64"}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = _fields(obj)
        if isinstance(obj, DNSQuery):
            out["rcode"] = RCODES.get(obj.rcode.upper()) if obj.rcode is not None else None
        elif isinstance(obj, TLSHandshake):
            out["x_peer_certificates_info"] = [_certificate_info(c) for c in obj.peer_certificates]
        elif isinstance(obj, HTTPRequest):
            out["tor"] = dict(NOT_TOR)
        elif isinstance(obj, HTTPTransaction) and obj.response is None:
            out["response"] = dict(EMPTY_RESPONSE, headers_list=[], headers={})
        return out
    if isinstance(obj, bytes):
        return maybe_binary(obj)
    if isinstance(obj, datetime):
        return ooni_time(obj)
    if isinstance(obj, tuple | list):
        return [as_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): as_dict(v) for k, v in obj.items()}
    return obj


def _fields(obj: Any) -> dict[str, Any]:
    renamed = RENAMED.get(type(obj), {})
    step = isinstance(obj, STEP_TYPES)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if step and f.name in TAG_FIELDS:
            continue
        value = getattr(obj, f.name)
        name = renamed.get(f.name, f.name)
        if value is None and name.startswith("x_"):
            continue
        out[name] = ooni_tags(obj) if step and f.name == "tags" else as_dict(value)
        if f.name == "headers_list":
            out["headers"] = headers_map(value)
    return out


def _certificate_info(cert: PeerCertificate) -> dict[str, Any]:
    return {f.name: as_dict(getattr(cert, f.name)) for f in dataclasses.fields(cert) if f.name != "data"}


def _measurement(m: Measurement) -> dict[str, Any]:
    out = _fields(m)
    del out["test_helper"]
    out["test_helpers"] = test_helpers(m.test_helper)
    out["extensions"] = dict(EXTENSIONS)
    annotations = dict(out["annotations"])
    if "architecture" in annotations:
        annotations["architecture"] = GOARCH.get(annotations["architecture"], annotations["architecture"])
    if "engine_version" in annotations:
        annotations.setdefault("engine_version_full", annotations["engine_version"])
    out["annotations"] = annotations
    keys = out["test_keys"]
    keys["agent"] = "redirect"  # we follow redirects ourselves (df-001-httpt ``agent``)
    keys["client_resolver"] = m.resolver_ip
    keys["retries"] = None
    keys["socksproxy"] = None
    keys["network_events"] = network_events(m.test_keys)
    return out


def test_helpers(url: str | None) -> dict[str, Any] | None:
    """df-000-base ``test_helpers`` for the control at *url* (``None``: no control)."""
    if url is None:
        return None
    scheme = url.split(":", 1)[0].lower()
    return {"backend": {"address": url, "type": scheme}}


def network_events(keys: WebConnectivityTestKeys) -> list[dict[str, Any]]:
    """df-008-netevents events of the steps *keys* recorded, in time order.

    Only what the steps themselves timed: each connect (``connect``), each TLS handshake
    (``tls_handshake_start`` / ``tls_handshake_done``) and each HTTP round trip
    (``http_transaction_start`` / ``http_transaction_done``), with the step's address,
    failure, tags and transaction id. Reads and writes are not recorded.
    """
    events: list[dict[str, Any]] = []

    def add(operation: str, address: str, failure: str | None, t0: float, t: float, step: Step) -> None:
        events.append({
            "address": address, "failure": failure, "num_bytes": 0, "operation": operation,
            "proto": "tcp", "t0": t0, "t": t, "tags": ooni_tags(step),
            "transaction_id": step.transaction_id,
        })  # fmt: skip

    for c in keys.tcp_connect:
        address = f"[{c.ip}]:{c.port}" if ":" in c.ip else f"{c.ip}:{c.port}"
        add("connect", address, c.status.failure, c.t0, c.t, c)
    for h in keys.tls_handshakes:
        add("tls_handshake_start", h.address, None, h.t0, h.t0, h)
        add("tls_handshake_done", h.address, h.failure, h.t0, h.t, h)
    for r in keys.requests:
        add("http_transaction_start", r.address, None, r.t0, r.t0, r)
        add("http_transaction_done", r.address, r.failure, r.t0, r.t, r)
    return sorted(events, key=lambda event: (event["t"], event["transaction_id"]))


def headers_map(headers_list: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """OONI's ``headers`` map: header name as received → its first value."""
    out: dict[str, str] = {}
    for name, value in headers_list:
        out.setdefault(name, value)
    return out


def maybe_binary(data: bytes) -> str | dict[str, str]:
    """OONI MaybeBinaryData: text when *data* is valid UTF-8, base64 otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"format": "base64", "data": base64.b64encode(data).decode("ascii")}


def to_json(measurement: Measurement | OONIMeasurement, *, indent: int | None = None) -> str:
    """The whole measurement as one JSON document (an :class:`OONIMeasurement`'s as it holds it)."""
    data = measurement.document if isinstance(measurement, OONIMeasurement) else as_dict(measurement)
    return json.dumps(data, indent=indent, ensure_ascii=False, sort_keys=False)


def ooni_measurement(
    document: Mapping[str, Any], *, target: str | None = None, summary: Summary
) -> OONIMeasurement:
    """An :class:`OONIMeasurement` of *document*, a whole df-000-base measurement.

    The envelope fields are read off the document; its ``probe_ip`` is replaced by OONI's
    ``127.0.0.1`` marker (the volunteer's address is never stored), in a copy.

    Args:
        document: JSON-ready; needs ``test_name``, ``measurement_start_time`` (OONI's
            ``YYYY-MM-DD hh:mm:ss``, UTC) and ``measurement_uid`` (or ``id``) as strings.
        target: the series it belongs to; defaults to its ``input``, or its ``test_name``
            when it has none.
        summary: what it found.

    Raises:
        ValueError: a required field is missing or malformed.
    """
    doc = dict(document)
    doc["probe_ip"] = "127.0.0.1"
    test_name = doc.get("test_name")
    uid = doc.get("measurement_uid") or doc.get("id")
    started = doc.get("measurement_start_time")
    if not isinstance(test_name, str) or not test_name:
        raise ValueError("test_name: missing")
    if not isinstance(uid, str) or not uid:
        raise ValueError("measurement_uid: missing")
    if not isinstance(started, str):
        raise ValueError("measurement_start_time: missing")
    try:
        when = datetime.strptime(started, OONI_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"measurement_start_time: not YYYY-MM-DD hh:mm:ss: {started[:40]!r}") from None
    runtime = doc.get("test_runtime", 0.0)
    input_ = doc.get("input")
    return OONIMeasurement(
        document=doc,
        target=target or (input_ if isinstance(input_, str) and input_ else test_name),
        summary=summary,
        test_name=test_name,
        measurement_uid=uid,
        measurement_start_time=when,
        test_runtime=float(runtime) if isinstance(runtime, int | float) else 0.0,
        probe_asn=str(doc.get("probe_asn") or "AS0"),
        probe_cc=str(doc.get("probe_cc") or "ZZ"),
        probe_network_name=str(doc.get("probe_network_name") or ""),
    )


_ID_ALPHABET: Final = string.ascii_letters + string.digits


def new_report_id(started: datetime, *, test_name: str, probe_cc: str, probe_asn: str) -> str:
    """A report id of the form OONI's collector issues (ooni/backend ``generate_report_id``).

    ``YYYYMMDDThhmmssZ_<test name without _>_<CC>_<ASN number>_n1_<16 random letters/digits>``,
    e.g. ``20240214T090617Z_webconnectivity_PK_17557_n1_1IvUiXNWHooB5rmD``; *started* is UTC.
    """
    asn = probe_asn.removeprefix("AS") or "0"
    rand = "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
    return f"{started:%Y%m%dT%H%M%SZ}_{test_name.replace('_', '')}_{probe_cc}_{asn}_n1_{rand}"


def new_measurement_uid(started: datetime, *, test_name: str, probe_cc: str) -> str:
    """A measurement uid of the form OONI's collector assigns on receipt.

    ``YYYYMMDDhhmmss.ffffff_<CC>_<test name without _>_<16 hex>``, e.g.
    ``20240214090617.181572_PK_webconnectivity_7888edc7748936bf``; *started* is UTC. OONI's
    16 hex digits hash the submitted body; ours are random (the body does not exist yet).
    """
    return f"{started:%Y%m%d%H%M%S.%f}_{probe_cc}_{test_name.replace('_', '')}_{secrets.token_hex(8)}"
