"""``probe show ID``: one stored measurement, step by step, with the outcome people read.

ID is a ``measurement_uid`` (as in ``probe run --json``, CSV and JSONL) or a unique prefix of
one. ``--json`` prints the raw OONI JSON exactly as stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.options import config_option, database_url, db_option
from probe.errors import ConfigError

# The store and rich load when the command runs, not for ``--help``.
if TYPE_CHECKING:
    from rich.console import Console

    from measurements.store.rows import MeasurementRow

SHOWN_MATCHES = 5
"""Ids an ambiguous prefix lists in its error."""


@click.command()
@click.argument("uid", metavar="ID")
@db_option
@config_option("for storage.database_url")
@click.option("--json", "as_json", is_flag=True, help="Print the measurement's OONI JSON, as stored.")
def show(uid: str, db_url: str | None, config_file: Path | None, as_json: bool) -> None:
    """Show one stored measurement step by step, with its outcome (ID: its measurement_uid or a prefix).

    Exit status 2 when no measurement, or more than one, has such an id.
    """
    from rich.console import Console

    from probe.cli.status import open_existing_store

    uid = uid.strip()
    if not uid:
        raise click.BadParameter("an empty id", param_hint="ID")
    with open_existing_store(database_url(db_url, config_file)) as store:
        found = store.find_measurements(uid, limit=SHOWN_MATCHES + 1)
        name = store.name
    if not found:
        raise ConfigError(f"{name}: no measurement has the id {uid!r} (`probe export` lists them)")
    if len(found) > 1:
        more = ", …" if len(found) > SHOWN_MATCHES else ""
        ids = ", ".join(r.measurement_uid for r in found[:SHOWN_MATCHES])
        raise ConfigError(f"{uid!r} is the start of several measurement ids ({ids}{more}): give more of it")
    (row,) = found
    assert row.body is not None  # read with its body
    if as_json:
        click.echo(row.body)
        return
    render(row, Console(highlight=False, soft_wrap=True))


def render(row: MeasurementRow, console: Console) -> None:
    """The measurement's steps (as ``probe measure`` prints them), its outcome and OONI's keys."""
    import json

    from rich.markup import escape

    from probe.isotime import iso_utc
    from probe.outcome import Outcome, describe

    doc: dict[str, Any] = json.loads(row.body or "{}")
    keys: dict[str, Any] = doc.get("test_keys") or {}
    network = f"{escape(row.probe_asn)} {escape(row.probe_cc)}"
    console.print(
        f"[bold]{escape(row.input)}[/]  ({row.runtime_s:.2f} s, {network}, {iso_utc(row.measured_at)})"
    )
    console.print(f"[dim]measurement_uid {escape(row.measurement_uid)}  round {row.round_id}[/]")
    for line in steps(keys):
        console.print(line)
    outcome = Outcome(row.outcome)
    console.print(f"outcome: [bold]{escape(describe(outcome, confirmed=row.confirmed))}[/]")
    verdict = (
        f"blocking={_json(keys.get('blocking'))} accessible={_json(keys.get('accessible'))} "
        f"dns_consistency={_json(keys.get('dns_consistency'))} mechanism={_json(row.mechanism)}"
    )
    if row.confirmed:
        verdict += f" confirmed={row.confirmed}"
    control = f" (control: {row.control_failure})" if row.control_failure else ""
    console.print(f"OONI keys: {escape(verdict + control)}")


def steps(keys: dict[str, Any]) -> list[str]:
    """One rich-markup line per DNS query, TCP connect, TLS handshake and HTTP request of *keys*."""
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
        if response.get("code"):
            truncated = ", truncated" if response.get("body_is_truncated") else ""
            length = response.get("x_body_length", response.get("body_length"))
            title = response.get("x_title", response.get("title"))
            got = f"{response['code']} ({length} bytes{truncated}) {title!r}"
        what = f"{request.get('method', 'GET')} {request.get('url', '')} via {r.get('address', '')}"
        lines.append(_line("http", what, r, got))
    return lines


def _line(step: str, what: str, event: dict[str, Any], ok: str) -> str:
    from rich.markup import escape

    failure = event.get("failure")
    outcome = f"[bold red]✗ {escape(failure)}[/]" if failure else f"[green]{escape(ok)}[/]"
    t0, t = event.get("t0"), event.get("t")
    elapsed = (
        f"  [dim]{(t - t0) * 1000:.0f} ms[/]"
        if isinstance(t0, int | float) and isinstance(t, int | float)
        else ""
    )
    return f"  {step:<4} {escape(what)}  → {outcome}{elapsed}"


def _json(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
