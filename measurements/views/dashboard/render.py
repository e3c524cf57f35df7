"""The Jinja2 environment: the templates shipped beside this module, every value autoescaped.

Autoescaping is on for every template (``select_autoescape`` with the default ``True``), so
each text from the data — titles, URLs, headers, failure strings, all of which a hostile
network chooses — is HTML-escaped wherever it lands, attributes included; no template marks
anything ``|safe``. Undefined names raise (``StrictUndefined``): a misspelt field is a
failing test, not a blank cell.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from measurements.patterns.families import display_target
from measurements.patterns.wording import when
from measurements.views.dashboard.pages import outcome_text

BADGES: Final = {
    "blocked.confirmed": "confirmed",
    "blocked.anomaly": "anomaly",
    "shutdown": "shutdown",
    "down": "down",
    "server.refusal": "refused",
    "reachable": "ok",
}
"""CSS class of each outcome's badge (no verdicts: ``none``)."""


def badge(outcome: str) -> str:
    """The badge class of *outcome*."""
    return BADGES.get(outcome, "none")


def _short(t: datetime | None) -> str:
    return "—" if t is None else t.strftime("%Y-%m-%d %H:%M")


@cache
def environment() -> Environment:
    """The one environment (templates compiled once per process)."""
    env = Environment(
        loader=PackageLoader("measurements.views.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # ``target``: a series as people call it (Telegram, a URL over HTTP/3, WireGuard (…)).
    env.filters.update(when=when, short=_short, badge=badge, outcome=outcome_text, target=display_target)
    return env


def render(template: str, **context: Any) -> str:
    """Render *template* with *context*."""
    return environment().get_template(template).render(**context)


@cache
def stylesheet() -> str:
    """The stylesheet (served as ``/static/style.css``; inlined by the report)."""
    return files("measurements.views.dashboard").joinpath("static/style.css").read_text(encoding="utf-8")


def style_digest() -> str:
    """The stylesheet's SHA-256 in base64: the CSP source ``'sha256-…'`` of it inlined in ``<style>``."""
    return b64encode(hashlib.sha256(stylesheet().encode("utf-8")).digest()).decode("ascii")
