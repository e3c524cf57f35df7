"""The OONI test-helper wire format (reference §1.2) as JSON: parse, validate, serialise.

Both directions are untrusted input somewhere: the helper parses requests from strangers, and
the probe parses responses from a helper that may be hostile or broken. Each parser checks
types and bounds and raises :class:`WireError` (a ``ValueError``) naming the offending field;
it never returns half-valid data. Unknown keys are ignored, as OONI's JSON decoding does, so
newer peers keep working.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any, Final

from probe.errors import TargetError
from probe.model import (
    ControlDNS,
    ControlHTTPRequest,
    ControlIPInfo,
    ControlRequest,
    ControlResponse,
    ControlTCPConnect,
    ControlTLSHandshake,
)
from probe.serialize import as_dict
from probe.steps.urls import EndpointError, endpoint, split_url
from probe.steps.urls import parse_endpoint as parse_ip_port

MAX_URL_LENGTH: Final = 8192
MAX_ENDPOINTS: Final = 64
MAX_HEADERS: Final = 64
MAX_HEADER_VALUES: Final = 8
MAX_TEXT: Final = 8192
"""Longest header value, title or failure string accepted."""
MAX_ADDRS: Final = 256
MAX_RESPONSE_HEADERS: Final = 256


class WireError(ValueError):
    """A request or response does not follow the wire format; the message names the field."""


def parse_request(data: bytes) -> ControlRequest:
    """Parse a control request body.

    Raises:
        WireError: not JSON, not an object, or a field is missing, mistyped or out of bounds
            (including a URL the probe could not measure and a malformed endpoint).
    """
    obj = _object(_json(data), "request")
    url = _text(obj.get("http_request"), "http_request", limit=MAX_URL_LENGTH)
    try:
        split_url(url)
    except TargetError as exc:
        raise WireError(f"http_request: {exc}") from None
    headers = _request_headers(obj.get("http_request_headers", {}))
    raw_endpoints = obj.get("tcp_connect", [])
    if not isinstance(raw_endpoints, list):
        raise WireError("tcp_connect: expected a list of 'ip:port' strings")
    if len(raw_endpoints) > MAX_ENDPOINTS:
        raise WireError(f"tcp_connect: more than {MAX_ENDPOINTS} endpoints")
    endpoints = tuple(
        dict.fromkeys(
            parse_endpoint(_text(item, f"tcp_connect[{i}]"))[2] for i, item in enumerate(raw_endpoints)
        )
    )
    quic = obj.get("x_quic_enabled", False)
    if not isinstance(quic, bool):
        raise WireError("x_quic_enabled: expected true or false")
    return ControlRequest(
        http_request=url, http_request_headers=headers, tcp_connect=endpoints, x_quic_enabled=quic
    )


def parse_endpoint(text: str) -> tuple[str, int, str]:
    """Split ``ip:port`` (``[v6]:port``).

    Returns:
        ``(ip, port, canonical "ip:port")``.

    Raises:
        WireError: not an IP address and a port in 1-65535.
    """
    try:
        ip, port = parse_ip_port(text)
    except EndpointError as exc:
        raise WireError(f"tcp_connect: {text[:100]!r}: {exc.reason}") from None
    return ip, port, endpoint(ip, port)


def request_json(request: ControlRequest) -> bytes:
    """The request as OONI's probe sends it (header values as lists)."""
    return _dump(as_dict(request))


def response_json(response: ControlResponse) -> bytes:
    """The response as OONI's helper sends it."""
    return _dump(as_dict(response))


def parse_response(data: bytes) -> ControlResponse:
    """Parse a helper's response.

    ``tls_handshake`` and ``ip_info`` may be absent (older helpers); the rest is required.

    Raises:
        WireError: not JSON, or a field is missing, mistyped or out of bounds.
    """
    obj = _object(_json(data), "response")
    dns_obj = _object(obj.get("dns"), "dns")
    addrs = _list(dns_obj.get("addrs") or [], "dns.addrs", MAX_ADDRS)
    dns = ControlDNS(
        failure=_failure(dns_obj.get("failure"), "dns.failure"),
        addrs=tuple(_text(a, "dns.addrs[]") for a in addrs),
    )
    tcp = {
        _endpoint_key(key, "tcp_connect"): ControlTCPConnect(
            status=_bool(value.get("status"), f"tcp_connect[{key}].status"),
            failure=_failure(value.get("failure"), f"tcp_connect[{key}].failure"),
        )
        for key, value in _entries(obj.get("tcp_connect"), "tcp_connect").items()
    }
    tls = {
        _endpoint_key(key, "tls_handshake"): ControlTLSHandshake(
            server_name=_text(value.get("server_name", ""), f"tls_handshake[{key}].server_name", empty=True),
            status=_bool(value.get("status"), f"tls_handshake[{key}].status"),
            failure=_failure(value.get("failure"), f"tls_handshake[{key}].failure"),
        )
        for key, value in _entries(obj.get("tls_handshake") or {}, "tls_handshake").items()
    }
    ip_info = {
        _ip_key(key): ControlIPInfo(
            asn=_int(value.get("asn", 0), f"ip_info[{key}].asn"),
            flags=_int(value.get("flags", 0), f"ip_info[{key}].flags"),
        )
        for key, value in _entries(obj.get("ip_info") or {}, "ip_info").items()
    }
    return ControlResponse(
        tcp_connect=tcp,
        tls_handshake=tls,
        http_request=_http(obj.get("http_request")),
        dns=dns,
        ip_info=ip_info,
    )


def _http(value: Any) -> ControlHTTPRequest:
    obj = _object(value, "http_request")
    headers_obj = _object(obj.get("headers") or {}, "http_request.headers")
    if len(headers_obj) > MAX_RESPONSE_HEADERS:
        raise WireError(f"http_request.headers: more than {MAX_RESPONSE_HEADERS}")
    headers = {
        _text(name, "http_request.headers", empty=True): _header_value(v, f"http_request.headers[{name}]")
        for name, v in headers_obj.items()
    }
    return ControlHTTPRequest(
        body_length=_int(obj.get("body_length", -1), "http_request.body_length", minimum=-1),
        failure=_failure(obj.get("failure"), "http_request.failure"),
        title=_text(obj.get("title") or "", "http_request.title", empty=True),
        headers=headers,
        status_code=_int(obj.get("status_code", -1), "http_request.status_code", minimum=-1),
        discovered_h3_endpoint=_text(
            obj.get("discovered_h3_endpoint") or "", "http_request.discovered_h3_endpoint", empty=True
        ),
    )


def _header_value(value: Any, where: str) -> str:
    # OONI's helper sends one string per name; accept a list too (first value), as some do.
    if isinstance(value, list):
        value = value[0] if value else ""
    return _text(value, where, empty=True)


def _request_headers(value: Any) -> dict[str, tuple[str, ...]]:
    obj = _object(value, "http_request_headers")
    if len(obj) > MAX_HEADERS:
        raise WireError(f"http_request_headers: more than {MAX_HEADERS} headers")
    headers: dict[str, tuple[str, ...]] = {}
    for name, values in obj.items():
        where = f"http_request_headers[{name[:40]!r}]"
        if not name or not name.isascii() or not all(c.isalnum() or c in "-_" for c in name):
            raise WireError(f"{where}: invalid header name")
        items = values if isinstance(values, list) else [values]
        if len(items) > MAX_HEADER_VALUES:
            raise WireError(f"{where}: more than {MAX_HEADER_VALUES} values")
        texts = tuple(_text(item, where, empty=True) for item in items)
        if any(not t.isprintable() for t in texts):
            raise WireError(f"{where}: control characters in a value")
        headers[name] = texts
    return headers


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # also 3.11's limit on long integer literals
        raise WireError(f"invalid JSON: {exc}") from None


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireError(f"{where}: expected a JSON object")
    return value


def _entries(value: Any, where: str) -> Mapping[str, dict[str, Any]]:
    obj = _object(value, where)
    if len(obj) > MAX_ADDRS:
        raise WireError(f"{where}: more than {MAX_ADDRS} entries")
    for key, item in obj.items():
        _object(item, f"{where}[{key[:60]}]")
    return obj


def _list(value: Any, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise WireError(f"{where}: expected a list")
    if len(value) > limit:
        raise WireError(f"{where}: more than {limit} items")
    return value


def _text(value: Any, where: str, *, limit: int = MAX_TEXT, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise WireError(
            f"{where}: expected a non-empty string" if not empty else f"{where}: expected a string"
        )
    if len(value) > limit:
        raise WireError(f"{where}: longer than {limit} characters")
    return value


def _failure(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where, limit=512)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise WireError(f"{where}: expected true or false")
    return value


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**53:
        raise WireError(f"{where}: expected an integer >= {minimum}")
    return value


def _endpoint_key(key: str, where: str) -> str:
    try:
        return parse_endpoint(key)[2]
    except WireError:
        raise WireError(f"{where}: {key[:100]!r} is not an 'ip:port' endpoint") from None


def _ip_key(key: str) -> str:
    try:
        return str(ipaddress.ip_address(key))
    except ValueError:
        raise WireError(f"ip_info: {key[:100]!r} is not an IP address") from None
