"""WhatsApp (OONI ts-018-whatsapp, probe-cli ``whatsapp`` 0.11.0): the app's endpoints,
the registration service and WhatsApp web.

What it sends (:func:`measure`), for the endpoint list ``whatsapp`` (:mod:`probe.nettests.endpoints`):

- to each app endpoint (role ``endpoint``: ``e1.whatsapp.net`` … ``e16.whatsapp.net``) on each
  of its ports (443 and 5222): a DNS lookup and a TCP connect, closed at once (nothing of
  WhatsApp's protocol is spoken);
- to the registration service (role ``registration``,
  ``https://v.whatsapp.net/v2/register``): a lookup, a connect, a TLS handshake and an HTTPS
  ``GET``;
- to WhatsApp web (role ``web``, ``https://web.whatsapp.com/``): the same. (The spec also
  names ``http://web.whatsapp.com/``; OONI's probe stopped fetching it, and so does this one.)

The keys, as the spec defines them: ``whatsapp_endpoints_status`` is ``ok`` when at least one
endpoint connect succeeded, else ``blocked``; ``whatsapp_endpoints_blocked`` lists the
endpoints that failed on every port (file order); ``whatsapp_endpoints_dns_inconsistent`` is
the legacy key, always empty; ``registration_server_status``/``_failure`` and
``whatsapp_web_status``/``_failure`` say whether the HTTPS conversation happened (any status
code counts). Our summary (``x_blocking``, ``x_accessible``, ``x_mechanism``) takes the app's
endpoints first, then the registration service, then the web.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from probe.model import OONIMeasurement, Summary
from probe.nettests import urlgetter, urlverdict
from probe.nettests.base import Context
from probe.nettests.endpoints import Endpoint, EndpointList
from probe.nettests.urlgetter import GetterConfig, Operation

TEST_NAME: Final = "whatsapp"
TEST_VERSION: Final = "0.11.0"
FAMILY: Final = "whatsapp"
ROLES: Final = ("endpoint", "registration", "web")
KEY_PREFIXES: Final = ("registration_server_", "whatsapp_")
"""The spec's own test keys start with these (the rest are urlgetter's and ours)."""


async def measure(
    endpoints: EndpointList, *, context: Context, config: GetterConfig | None = None
) -> OONIMeasurement:
    """Measure WhatsApp from the ``whatsapp`` list *endpoints* (*context*, *config*: as
    :func:`~probe.nettests.urlgetter.begin` takes them).

    Raises:
        ConfigError: an app endpoint, the registration service or the web is not listed, or
            the CA file is unreadable.
    """
    session = urlgetter.begin(endpoints, ROLES, config)
    apps = endpoints.role("endpoint")
    registration, web = endpoints.one("registration"), endpoints.one("web")
    jobs = [urlgetter.connect(app.host, port, session) for app in apps for port in app.ports]
    operations = await urlgetter.gather(
        session, [*jobs, urlgetter.fetch(_url(registration), session), urlgetter.fetch(_url(web), session)]
    )
    connects, registration_op, web_op = operations[:-2], operations[-2], operations[-1]
    return urlverdict.conclude(
        session,
        test_name=TEST_NAME,
        test_version=TEST_VERSION,
        operations=operations,
        keys=analyse(apps, connects, registration_op, web_op),
        found=summarize(connects, registration_op, web_op, session.config),
        context=context,
    )


def _url(endpoint: Endpoint) -> str:
    return endpoint.url or f"https://{endpoint.host}/"


def analyse(
    apps: Sequence[Endpoint], connects: Sequence[Operation], registration: Operation, web: Operation
) -> dict[str, Any]:
    """The spec's keys from the connects (each app endpoint, then its ports) and the two fetches."""
    blocked: list[str] = []
    index = 0
    for app in apps:
        mine = connects[index : index + len(app.ports)]
        index += len(app.ports)
        if mine and not any(op.ok for op in mine) and app.host not in blocked:
            blocked.append(app.host)
    return {
        "registration_server_failure": registration.failure,
        "registration_server_status": urlgetter.OK if registration.ok else urlgetter.BLOCKED,
        "whatsapp_endpoints_blocked": blocked,
        "whatsapp_endpoints_dns_inconsistent": [],
        "whatsapp_endpoints_status": urlgetter.OK if any(op.ok for op in connects) else urlgetter.BLOCKED,
        "whatsapp_web_failure": web.failure,
        "whatsapp_web_status": urlgetter.OK if web.ok else urlgetter.BLOCKED,
    }


def summarize(
    connects: Sequence[Operation],
    registration: Operation,
    web: Operation,
    config: GetterConfig | None = None,
) -> Summary:
    """Our summary: the app's endpoints (all failing), else registration, else the web."""
    if connects and not any(op.ok for op in connects):
        deciding = urlverdict.deciding(connects)
    elif not registration.ok:
        deciding = registration
    else:
        deciding = web
    blocking, mechanism = urlverdict.verdict(deciding, config)
    return urlverdict.summary(blocking, mechanism, [*connects, registration, web])
