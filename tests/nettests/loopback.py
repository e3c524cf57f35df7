"""A small loopback "Internet" for the messaging tests: a scripted resolver, servers, a CA.

Every name resolves (through :class:`~tests.servers.dns_server.ScriptedDNSServer`) to
127.0.0.1, where each test starts the servers it needs on ports of their own; the endpoint
list the test gets is an override file naming those names and ports.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from probe import serialize
from probe.model import OONIMeasurement
from probe.nettests import endpoints
from probe.nettests.base import Context
from probe.nettests.urlgetter import GetterConfig
from probe.steps import dns
from tests.servers.dns_server import Reply, ScriptedDNSServer

CONTEXT = Context(probe_cc="PK", probe_asn="AS17557", probe_network_name="PTCL")
URLGETTER_KEYS = frozenset({
    "agent", "failed_operation", "failure", "network_events", "queries", "requests", "socksproxy",
    "tcp_connect", "tls_handshakes",
})  # fmt: skip
SUMMARY_KEYS = frozenset({"x_blocking", "x_accessible", "x_mechanism"})


@dataclass(frozen=True)
class Loopback:
    """The resolver, the CA and where the test writes its endpoint list."""

    resolver: ScriptedDNSServer
    ca: trustme.CA
    ca_file: Path
    directory: Path

    def config(self, timeout: float = 2.0, **changes: Any) -> GetterConfig:
        """A configuration asking the scripted resolver and trusting only the CA."""
        base = GetterConfig(
            resolver=dns.parse_resolver(self.resolver.address), ca_file=self.ca_file, allow_loopback=True
        )
        return GetterConfig(**{**_fields(base.with_timeout(timeout)), **changes})

    def cert(self, *names: str) -> trustme.LeafCert:
        return self.ca.issue_cert(*names)

    def endpoint_list(self, family: str, entries: Sequence[Mapping[str, Any]]) -> endpoints.EndpointList:
        """Write *entries* as an override file and load it, as ``--endpoints`` does."""
        path = self.directory / f"{family}.toml"
        lines = []
        for entry in entries:
            lines.append(f"[[{family}]]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
            lines.append("")
        path.write_text("\n".join(lines), encoding="utf-8")
        return endpoints.load(family, path, fallback=False)


def _fields(config: GetterConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


@contextmanager
def loopback(directory: Path, script: Mapping[str, Reply]) -> Iterator[Loopback]:
    """A resolver answering *script* and a CA whose file is in *directory*."""
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with ScriptedDNSServer(script) as resolver:
        yield Loopback(resolver=resolver, ca=ca, ca_file=ca_file, directory=directory)


LOCAL = Reply(a=("127.0.0.1",))


def run(measurement: Any) -> tuple[dict[str, Any], OONIMeasurement]:
    """Run a test's ``measure(…)`` coroutine; its JSON document and the measurement."""
    m: OONIMeasurement = asyncio.run(measurement)
    return json.loads(serialize.to_json(m)), m
