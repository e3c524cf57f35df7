"""Telegram (OONI ts-020-telegram, probe-cli ``telegram`` 0.3.1): the data centres and the web.

What it sends (:func:`measure`), for the endpoint list ``telegram`` (:mod:`probe.nettests.endpoints`):

- to each data centre (role ``datacenter``, an IP address) on each of its ports (80 and
  443): a TCP connect and an HTTP ``POST /`` with no body, plain HTTP on both ports (the DCs
  speak no TLS on 443, as the desktop client's fallback uses them);
- to the web version (role ``web``, ``https://web.telegram.org/``): a DNS lookup, a TCP
  connect, a TLS handshake and an HTTPS ``GET /``.

The keys, as the spec defines them: ``telegram_tcp_blocking`` is true when no data centre
access got past the TCP connect; ``telegram_http_blocking`` when no HTTP request to a data
centre got a response; ``telegram_web_status`` ``blocked`` (with ``telegram_web_failure``)
when the web version's fetch failed at any step, else ``ok``. Beside them OONI's urlgetter
records and our summary (``x_blocking``, ``x_accessible``, ``x_mechanism``): the data centres
decide first (the app), then the web version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from probe.model import OONIMeasurement, Summary
from probe.nettests import urlgetter, urlverdict
from probe.nettests.base import Context
from probe.nettests.endpoints import EndpointList
from probe.nettests.urlgetter import GetterConfig, Operation

TEST_NAME: Final = "telegram"
TEST_VERSION: Final = "0.3.1"
FAMILY: Final = "telegram"
ROLES: Final = ("datacenter", "web")
KEY_PREFIXES: Final = ("telegram_",)
"""The spec's own test keys start with these (the rest are urlgetter's and ours)."""


async def measure(
    endpoints: EndpointList, *, context: Context, config: GetterConfig | None = None
) -> OONIMeasurement:
    """Measure Telegram: *endpoints* is the ``telegram`` list; *context* and *config* as
    :func:`~probe.nettests.urlgetter.begin` takes them.

    Raises:
        ConfigError: the list lacks a data centre or the web, or the CA file is unreadable.
    """
    session = urlgetter.begin(endpoints, ROLES, config)
    web = endpoints.one("web")
    jobs = [
        urlgetter.fetch(f"http://{dc.host}:{port}/", session, method="POST")
        for dc in endpoints.role("datacenter")
        for port in dc.ports
    ]
    web_job = urlgetter.fetch(web.url or f"https://{web.host}/", session)
    operations = await urlgetter.gather(session, [web_job, *jobs])
    web_op, dcs = operations[0], operations[1:]
    return urlverdict.conclude(
        session,
        test_name=TEST_NAME,
        test_version=TEST_VERSION,
        operations=[*dcs, web_op],
        keys=analyse(dcs, web_op),
        found=summarize(dcs, web_op, session.config),
        context=context,
    )


def analyse(dcs: Sequence[Operation], web: Operation) -> dict[str, Any]:
    """The spec's keys from the data centres' POSTs and the web version's GET."""
    tcp_blocking = not any(op.ok or op.failed_operation != urlgetter.CONNECT for op in dcs)
    return {
        "telegram_http_blocking": not any(op.ok for op in dcs),
        "telegram_tcp_blocking": tcp_blocking,
        "telegram_web_failure": web.failure,
        "telegram_web_status": urlgetter.OK if web.ok else urlgetter.BLOCKED,
    }


def summarize(dcs: Sequence[Operation], web: Operation, config: GetterConfig | None = None) -> Summary:
    """Our summary: the data centres' blocking first (the app), then the web version's.

    With every data centre failing, ``tcp_ip`` when all failed at the connect (the spec's
    ``telegram_tcp_blocking``), else what stopped the HTTP exchanges that got connected.
    """
    failed = [op for op in dcs if not op.ok]
    if dcs and len(failed) == len(dcs):
        past_connect = [op for op in failed if op.failed_operation != urlgetter.CONNECT]
        deciding = urlverdict.deciding(past_connect or failed)
        blocking, mechanism = urlverdict.verdict(deciding, config)
    else:
        blocking, mechanism = urlverdict.verdict(web, config)
    return urlverdict.summary(blocking, mechanism, [*dcs, web])
