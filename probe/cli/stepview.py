"""One measurement, step by step, as people read it: what ``probe measure`` and ``probe show`` print.

Both read the OONI JSON's ``test_keys`` (``probe measure`` serialises its fresh measurement,
``probe show`` reads the stored one), so a measurement reads the same whichever printed it.
Lines are rich markup; rich is imported only in the CLI layer.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape


def step_lines(keys: dict[str, Any]) -> list[str]:
    """One line per DNS query, TCP connect, TLS handshake and HTTP request of *keys*."""
    lines: list[str] = []
    for q in keys.get("queries") or []:
        engine, resolver = q.get("engine", ""), q.get("resolver_address") or ""
        where = f"{engine} {resolver}" if resolver else engine
        addresses = [
            a.get("ipv4") or a.get("ipv6")
            for a in q.get("answers") or []
            if a.get("answer_type") in ("A", "AAAA")
        ]
        ok = ", ".join(a for a in addresses if a) or "(no addresses)"
        lines.append(_line("dns", f"{where} {q.get('hostname', '')} {q.get('query_type', '')}", q, ok))
    for c in keys.get("tcp_connect") or []:
        status = c.get("status") or {}
        lines.append(
            _line(
                "tcp", f"{c.get('ip')}:{c.get('port')}", {**c, "failure": status.get("failure")}, "connected"
            )
        )
    for h in keys.get("tls_handshakes") or []:
        ok = f"{h.get('tls_version') or ''} {h.get('negotiated_protocol') or ''}".strip() or "handshake done"
        lines.append(_line("tls", f"{h.get('address')} sni={h.get('server_name')}", h, ok))
    for r in reversed(keys.get("requests") or []):
        request, response = r.get("request") or {}, r.get("response") or {}
        got = ""
        if response.get("code"):  # OONI writes an empty response (code 0) for a failed fetch
            truncated = ", truncated" if response.get("body_is_truncated") else ""
            length = response.get("x_body_length", response.get("body_length"))
            title = response.get("x_title", response.get("title"))
            got = f"{response['code']} ({length} bytes{truncated}) {title!r}"
        what = f"{request.get('method', 'GET')} {request.get('url', '')} via {r.get('address', '')}"
        lines.append(_line("http", what, r, got, note=transfer(r)))
    return lines


def transfer(r: dict[str, Any]) -> str:
    """How a body came: ``81920 body bytes in 9.60 s (68 kbit/s)``; empty when none came.

    The rate is the body's (from the headers to its last bytes), the number that tells a
    throttled transfer (``http.throttle``) from a slow server that answered late.
    """
    received, start, last = r.get("x_body_bytes_received"), r.get("x_headers_t"), r.get("x_body_last_byte_t")
    if not received or start is None or last is None:
        return ""
    seconds = last - start
    rate = f" ({received * 8 / seconds / 1000:.0f} kbit/s)" if seconds > 0 else ""
    return f"{received} body bytes in {seconds:.2f} s{rate}"


def ooni_keys(keys: dict[str, Any], *, mechanism: str | None, confirmed: str | None) -> str:
    """OONI's verdict keys and ours in one line (plain text: escape it for rich)."""
    text = (
        f"blocking={_json(keys.get('blocking'))} accessible={_json(keys.get('accessible'))} "
        f"dns_consistency={_json(keys.get('dns_consistency'))} mechanism={_json(mechanism)}"
    )
    if confirmed:
        text += f" confirmed={confirmed}"
    control_failure = keys.get("control_failure")
    return text + (f" (control: {control_failure})" if control_failure else "")


def _line(step: str, what: str, event: dict[str, Any], ok: str, *, note: str = "") -> str:
    failure = event.get("failure")
    outcome = f"[bold red]✗ {escape(failure)}[/]" if failure else f"[green]{escape(ok)}[/]"
    t0, t = event.get("t0"), event.get("t")
    elapsed = (
        f"  [dim]{(t - t0) * 1000:.0f} ms[/]"
        if isinstance(t0, int | float) and isinstance(t, int | float)
        else ""
    )
    note = f"  [dim]{escape(note)}[/]" if note else ""
    return f"  {step:<4} {escape(what)}  → {outcome}{elapsed}{note}"


def _json(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
