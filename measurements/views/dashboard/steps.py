"""One measurement's evidence for its page: each step, with the control's view beside the probe's.

Read from the stored OONI JSON's ``test_keys`` (as ``probe show`` reads it): the DNS queries,
TCP connects, TLS handshakes and HTTP requests the probe made, each beside what the control
vantage saw for the same thing (``control.dns``, ``control.tcp_connect[ip:port]``,
``control.tls_handshake[ip:port]``, ``control.http_request``), OONI's verdict keys and
ours. Plain data: the template escapes every text (all of it came from the network).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

VERDICT_KEYS: Final = (
    "blocking",
    "accessible",
    "dns_consistency",
    "dns_experiment_failure",
    "http_experiment_failure",
    "control_failure",
    "body_length_match",
    "body_proportion",
    "status_code_match",
    "headers_match",
    "title_match",
    "x_mechanism",
    "x_confirmed",
)
"""OONI's verdict keys, and ours (``x_``), in the order the page lists them."""


@dataclass(frozen=True, slots=True)
class Side:
    """What one vantage saw for a step: a result, or a failure string."""

    text: str
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One DNS query, TCP connect, TLS handshake or HTTP request."""

    layer: str
    what: str
    probe: Side
    control: Side | None
    """``None``: the control has nothing to compare (no control, or not this step)."""
    elapsed_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """A measurement's page: its steps, verdict keys and the raw JSON."""

    steps: tuple[Step, ...]
    keys: tuple[tuple[str, str], ...]
    raw: str
    """The OONI JSON, indented."""
    readable: bool
    """Whether the stored body parsed as a measurement (a stub or damaged body: ``False``)."""


def evidence(body: str | None) -> Evidence:
    """The evidence in a stored OONI JSON *body*."""
    try:
        document = json.loads(body or "")
    except ValueError:
        return Evidence((), (), body or "", False)
    raw = json.dumps(document, indent=2, ensure_ascii=False)
    keys = document.get("test_keys") if isinstance(document, dict) else None
    if not isinstance(keys, dict):
        return Evidence((), (), raw, False)
    found = keys.get("control")
    control: dict[str, Any] = found if isinstance(found, dict) else {}
    steps = [*_dns(keys, control), *_tcp(keys, control), *_tls(keys, control), *_http(keys, control)]
    verdict = tuple((k, _value(keys.get(k))) for k in VERDICT_KEYS if k in keys)
    return Evidence(tuple(steps), verdict, raw, True)


def _dns(keys: dict[str, Any], control: dict[str, Any]) -> list[Step]:
    seen = _dict(control.get("dns"))
    theirs = None
    if seen is not None:
        theirs = Side(", ".join(seen.get("addrs") or []) or "(no addresses)", seen.get("failure"))
    out = []
    for q in _list(keys.get("queries")):
        engine, resolver = q.get("engine", ""), q.get("resolver_address") or ""
        where = f"{engine} {resolver}".strip()
        addresses = [
            a.get("ipv4") or a.get("ipv6")
            for a in _list(q.get("answers"))
            if a.get("answer_type") in ("A", "AAAA")
        ]
        mine = Side(", ".join(a for a in addresses if a) or "(no addresses)", q.get("failure"))
        what = f"{where}: {q.get('hostname', '')} {q.get('query_type', '')}"
        out.append(Step("DNS", what, mine, theirs, _elapsed(q)))
    return out


def _tcp(keys: dict[str, Any], control: dict[str, Any]) -> list[Step]:
    theirs = _dict(control.get("tcp_connect")) or {}
    out = []
    for c in _list(keys.get("tcp_connect")):
        endpoint = f"{c.get('ip')}:{c.get('port')}"
        if ":" in str(c.get("ip")):
            endpoint = f"[{c.get('ip')}]:{c.get('port')}"
        status = _dict(c.get("status")) or {}
        mine = Side("connected", status.get("failure"))
        other = theirs.get(endpoint)
        side = Side("connected", other.get("failure")) if isinstance(other, dict) else None
        out.append(Step("TCP", endpoint, mine, side, _elapsed(c)))
    return out


def _tls(keys: dict[str, Any], control: dict[str, Any]) -> list[Step]:
    theirs = _dict(control.get("tls_handshake")) or {}
    out = []
    for h in _list(keys.get("tls_handshakes")):
        done = (
            f"{h.get('tls_version') or ''} {h.get('negotiated_protocol') or ''}".strip() or "handshake done"
        )
        other = theirs.get(str(h.get("address")))
        side = Side("handshake done", other.get("failure")) if isinstance(other, dict) else None
        what = f"{h.get('address')} (SNI {h.get('server_name')})"
        out.append(Step("TLS", what, Side(done, h.get("failure")), side, _elapsed(h)))
    return out


def _http(keys: dict[str, Any], control: dict[str, Any]) -> list[Step]:
    seen = _dict(control.get("http_request"))
    requests = list(reversed(_list(keys.get("requests"))))  # OONI lists the last request first
    out = []
    for i, r in enumerate(requests):
        request = r.get("request") if isinstance(r.get("request"), dict) else {}
        response = r.get("response") if isinstance(r.get("response"), dict) else {}
        got = ""
        if response.get("code"):
            length = response.get("x_body_length", response.get("body_length"))
            title = response.get("x_title", response.get("title"))
            truncated = ", truncated" if response.get("body_is_truncated") else ""
            got = f"{response['code']}, {length} bytes{truncated}, title: {title}"
        theirs = None
        if seen is not None and i == len(requests) - 1:  # the control fetched the final page
            theirs = Side(
                f"{seen.get('status_code')}, {seen.get('body_length')} bytes, title: {seen.get('title')}",
                seen.get("failure"),
            )
        what = f"{request.get('method', 'GET')} {request.get('url', '')}"
        out.append(Step("HTTP", what, Side(got or "no response", r.get("failure")), theirs, _elapsed(r)))
    return out


def _dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _list(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _elapsed(event: dict[str, Any]) -> float | None:
    t0, t = event.get("t0"), event.get("t")
    if isinstance(t0, int | float) and isinstance(t, int | float):
        return round((t - t0) * 1000, 1)
    return None


def _value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
