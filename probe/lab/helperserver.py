"""The lab's test helper: ``probe helper``'s application in the world namespace.

The same application and server as ``probe helper serve`` (nothing lab-specific in them), run
the way every lab server runs (:mod:`probe.lab.serving`: a JSON config, ``ready`` on stdout,
exit when the parent goes). The lab allows its own 10.x world, resolves with the world's
public resolver, trusts the lab CA and maps addresses to ASN and country with the lab's files.

Config (JSON)::

    {"address": "10.N.66.1", "port": 443, "cert": "…/cert-th.reachprobe.lab.pem",
     "allow": ["10.N.64.0/18"], "resolvers": ["10.N.65.53:53"], "ca_file": "…/lab-ca.pem",
     "asn_database": "…/lab-asn.toml", "country_database": "…/lab-cc.csv", "timeout": 2.0}
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from probe.helper.app import HelperSettings, Limits
from probe.helper.geo import Geo, load_country_database
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.helper.server import HelperServer, bind, make_server
from probe.ipinfo import load_asn_database
from probe.lab.serving import Closable, main
from probe.steps import dns


class _Stopper:
    def __init__(self, server: HelperServer) -> None:
        self._server = server

    def close(self) -> None:
        self._server.should_exit = True


async def start(config: dict[str, Any]) -> list[Closable]:
    """Bind the helper's socket and start serving; return once it accepts connections."""
    timeout = float(config.get("timeout", 4.0))
    asn_of = load_asn_database(Path(config["asn_database"]) if config.get("asn_database") else None)
    settings = HelperSettings(
        config=HelperConfig(
            resolvers=tuple(dns.parse_resolver(text) for text in config.get("resolvers", [])),
            ca_file=Path(config["ca_file"]) if config.get("ca_file") else None,
            dns_timeout=timeout,
            tcp_timeout=timeout,
            tls_timeout=timeout,
            http_timeout=timeout,
            asn_of=asn_of,
        ),
        policy=AddressPolicy.allowing(config.get("allow", [])),
        limits=Limits(deadline_s=2.5 * timeout + 1),
        geo=Geo(
            asn_of=asn_of,
            cc_of=load_country_database(
                Path(config["country_database"]) if config.get("country_database") else None
            ),
        ),
    )
    cert = Path(config["cert"]) if config.get("cert") else None
    server = make_server(settings, tls_cert=cert)
    sock = bind(config["address"], int(config.get("port", 443)))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the helper stopped before it started")
        await asyncio.sleep(0.01)
    return [_Stopper(server)]


if __name__ == "__main__":
    main(start)
