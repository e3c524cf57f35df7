"""Signal (OONI ts-029-signal, probe-cli ``signal`` 0.2.2): the backends Signal's app talks to.

What it sends (:func:`measure`), for the endpoint list ``signal`` (:mod:`probe.nettests.endpoints`):

- to each backend (role ``backend``: ``textsecure-service.whispersystems.org``,
  ``storage.signal.org``, ``cdn.signal.org``, ``cdn2.signal.org``, ``sfu.voip.signal.org``): a
  DNS lookup, a TCP connect, a TLS handshake and an HTTPS ``GET /``, the certificate verified
  against the system store plus Signal's own roots (``config/nettests/signal_roots.toml``);
- a DNS lookup of ``uptime.signal.org`` (role ``uptime``), recorded and not judged, as OONI's.

The keys, as the spec defines them: ``signal_backend_status`` is ``blocked`` when any backend
fetch failed (``signal_backend_failure``: the first such failure, in list order), else ``ok``.
Our summary (``x_blocking``, ``x_accessible``, ``x_mechanism``) is that failing fetch's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from probe import resources
from probe.errors import ConfigError
from probe.mechanism import Mechanism
from probe.model import OONIMeasurement, Summary
from probe.nettests import urlgetter, urlverdict
from probe.nettests.base import Context
from probe.nettests.endpoints import EndpointList
from probe.nettests.urlgetter import GetterConfig, Operation
from probe.rounds.tomlfile import read_toml

TEST_NAME: Final = "signal"
TEST_VERSION: Final = "0.2.2"
FAMILY: Final = "signal"
ROLES: Final = ("backend",)
KEY_PREFIXES: Final = ("signal_",)
"""The spec's own test keys start with these (the rest are urlgetter's and ours)."""


def signal_roots(path: Path | None = None) -> str:
    """Signal's root certificates (PEM text) from *path*, default the shipped ``signal_roots.toml``.

    Raises:
        ConfigError: the file cannot be read or has no ``roots`` list of PEM strings.
    """
    path = path or Path(str(resources.config_dir() / "nettests" / "signal_roots.toml"))
    roots = read_toml(path, what="Signal roots").get("roots")
    if (
        not isinstance(roots, list)
        or not roots
        or not all(isinstance(r, str) and "BEGIN CERT" in r for r in roots)
    ):
        raise ConfigError(f"{path}: roots: expected a list of PEM certificates")
    return "\n".join(root.strip() for root in roots) + "\n"


async def measure(
    endpoints: EndpointList, *, context: Context, config: GetterConfig | None = None
) -> OONIMeasurement:
    """Measure Signal's backends listed in *endpoints* (the ``signal`` list); *context* and
    *config* as :func:`~probe.nettests.urlgetter.begin` takes them.

    Raises:
        ConfigError: no backend is listed, or a CA or roots file is unreadable.
    """
    session = urlgetter.begin(endpoints, ROLES, config, extra_roots=signal_roots())
    backends = endpoints.role("backend")
    jobs = [urlgetter.fetch(b.url or f"https://{b.host}/", session) for b in backends]
    jobs += [urlgetter.lookup(u.host, session) for u in endpoints.role("uptime")]
    operations = await urlgetter.gather(session, jobs)
    fetches = operations[: len(backends)]
    return urlverdict.conclude(
        session,
        test_name=TEST_NAME,
        test_version=TEST_VERSION,
        operations=operations,
        keys=analyse(fetches),
        found=summarize(fetches, session.config),
        context=context,
    )


def analyse(fetches: Sequence[Operation]) -> dict[str, Any]:
    """The spec's keys from the backends' fetches."""
    failure = next((op.failure for op in fetches if not op.ok), None)
    return {
        "signal_backend_failure": failure,
        "signal_backend_status": urlgetter.BLOCKED if failure is not None else urlgetter.OK,
    }


def summarize(fetches: Sequence[Operation], config: GetterConfig | None = None) -> Summary:
    """Our summary: the first failing backend's verdict, else ok."""
    failing = next((op for op in fetches if not op.ok), None)
    verdict = urlverdict.verdict(failing, config) if failing else (False, Mechanism.OK)
    return urlverdict.summary(*verdict, fetches)
