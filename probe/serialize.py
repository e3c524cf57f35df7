"""The one place where measurement data becomes JSON-ready dictionaries (OONI data format).

Rules: dataclasses become dicts with their field names; tuples become lists; ``bytes`` become
OONI's MaybeBinaryData (a UTF-8 string when the bytes decode, else
``{"format": "base64", "data": …}``); every ``headers_list`` gains a ``headers`` map beside it
(first value wins, as OONI's); DNS answers omit empty address fields; certificates are
always base64. Our own extension fields (``x_…``, OONI's prefix for non-standard keys) are
omitted when ``None``: a record without that evidence reads exactly as OONI's format, and
adding such a field never changes the JSON of data that lacks it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from probe.model import DNSAnswer, Measurement, PeerCertificate


def as_dict(obj: Any) -> Any:
    """Return *obj* (a model dataclass, or a container of them) as JSON-ready data."""
    if isinstance(obj, DNSAnswer):
        return {
            f.name: as_dict(v) for f in dataclasses.fields(obj) if (v := getattr(obj, f.name)) is not None
        }
    if isinstance(obj, PeerCertificate):
        # DER is binary by nature: always base64, even when the bytes happen to decode.
        cert = {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        cert["data"] = {"format": "base64", "data": base64.b64encode(obj.data).decode("ascii")}
        return cert
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None and f.name.startswith("x_"):
                continue
            out[f.name] = as_dict(value)
            if f.name == "headers_list":
                out["headers"] = headers_map(value)
        return out
    if isinstance(obj, bytes):
        return maybe_binary(obj)
    if isinstance(obj, tuple | list):
        return [as_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): as_dict(v) for k, v in obj.items()}
    return obj


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


def to_json(measurement: Measurement, *, indent: int | None = None) -> str:
    """The whole measurement as one JSON document."""
    return json.dumps(as_dict(measurement), indent=indent, ensure_ascii=False, sort_keys=False)
