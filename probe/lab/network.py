"""A running lab: topology + certificates + servers + censorship, started and stopped as one.

::

    with Lab.create(workdir) as lab:          # a fresh prefix and address block
        lab.start(scenario.censorship)        # namespaces, servers, iptables/tc rules
        ...                                   # run probes with lab.client_command(...)
    # everything is gone here, whatever happened inside

It also writes the probe's view of the lab network as ordinary probe configuration
(``settings.toml``: the public resolver, the lab CA, ``control.url`` naming the lab's test
helper, ``network.public_networks`` and ``network.asn_database`` pointing at ``lab-asn.toml``),
which the runner hands to ``probe measure --config``. The test helper runs in the world
namespace at ``th.reachprobe.lab`` (HTTPS, lab CA), allowed to measure the lab's 10.x world.

A scenario's extra world endpoints (:mod:`probe.lab.world`) get their addresses in the plan,
their DNS names in the zone, certificates from the lab CA, their ASNs in ``lab-asn.toml``,
their servers (one process per server module), and ``endpoints.toml``, the endpoint-list
override the tests beyond websites get (``--endpoints``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from probe.lab import censor
from probe.lab.censor import Censorship
from probe.lab.pki import LabPKI, write_pki
from probe.lab.plan import HELPER_ASN, ISP_ASN, PROXY_PORT, PUBLIC_DNS_ASN, LabPlan, new_plan
from probe.lab.processes import Server, ServerSpec, start_all, stop_all
from probe.lab.sites import BLOCKPAGE_DOMAIN, HELPER_DOMAIN, SITE_BY_DOMAIN, SITES
from probe.lab.topology import Topology, live_prefixes
from probe.lab.world import World, override_toml, server_configs

PROBE_COUNTRY = "PK"
"""The country of the lab ISP's address space, as the helper's ``whoami`` reports it."""
HELPER_TIMEOUT = 2.0
"""The helper's step budget: its world is never censored, so this only bounds real faults."""
UPSTREAM_TIMEOUT = 0.4
"""The ISP resolver's patience with the public one: below the client's 1 s stub timeout."""


FINGERPRINT_HEADER = (
    "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
    "expected_countries,source,exp_url,notes"
)


def lab_fingerprints(plan: LabPlan) -> str:
    """The lab ISP's artefacts as an operator's fingerprint file: its DNS answer and block URL.

    The lab's block-page server stands in for Nayatel's 203.82.48.83 and Wateen's restrict
    page, whose real fingerprints ship with the probe but cannot match lab addresses.
    """
    rows = [
        FINGERPRINT_HEADER,
        f"lab.isp_dns_blockpage,isp,,dns,full,{plan.blockpage_ip},5,PK,reachprobe lab,,"
        "the lab ISP resolver's block-page answer",
        f"lab.isp_block_redirect,isp,,header.location,prefix,http://{BLOCKPAGE_DOMAIN}/,5,PK,"
        "reachprobe lab,,the lab ISP's redirect to its block URL",
    ]
    return "\n".join(rows) + "\n"


class Lab:
    """One lab run. Use :meth:`create`; stop with :meth:`stop` or as a context manager."""

    def __init__(self, plan: LabPlan, workdir: Path, world: World | None = None) -> None:
        self.plan = plan
        self.workdir = workdir
        self.world = world or World()
        self.topology = Topology(plan)
        self.servers: list[Server] = []
        self.pki: LabPKI | None = None
        self.timings: dict[str, float] = {}

    @classmethod
    def create(cls, workdir: Path, world: World | None = None) -> Lab:
        """A lab with a prefix and address block no live run uses, hosting *world*'s endpoints."""
        world = world or World()
        endpoints = tuple(world.addresses_of().items())
        return cls(new_plan(live_prefixes(), endpoints), workdir, world)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self, entries: Iterable[Censorship] = ()) -> dict[str, float]:
        """Build the topology, start the servers, apply *entries*; return timings in seconds.

        Raises:
            LabError: a setup step failed (everything started so far is stopped).
        """
        entries = tuple(entries)
        try:
            self.timings["topology_up_s"] = self.topology.up()
            started = time.monotonic()
            names = [site.domain for site in SITES] + [BLOCKPAGE_DOMAIN, HELPER_DOMAIN]
            identities = {
                endpoint.name: [*endpoint.names, self.plan.endpoint_ip(endpoint.name)]
                for endpoint in self.world.endpoints
                if endpoint.needs_certificate
            }
            self.pki = write_pki(self.workdir, names, identities)
            self.write_probe_settings()  # the helper reads the ASN and country files
            self.write_endpoint_lists()
            self.servers = start_all(self._server_specs(entries), self.workdir)
            self.timings["servers_up_s"] = time.monotonic() - started
            started = time.monotonic()
            self.topology.apply(
                censor.iptables_ruleset(self.plan, entries), censor.tc_batch(self.plan, entries)
            )
            self.timings["censor_s"] = time.monotonic() - started
        except BaseException:
            self.stop()
            raise
        return dict(self.timings)

    def stop(self) -> dict[str, float]:
        """Stop the servers and remove the topology (idempotent); return timings."""
        started = time.monotonic()
        stop_all(self.servers)
        self.servers = []
        self.timings["servers_down_s"] = time.monotonic() - started
        self.timings["topology_down_s"] = self.topology.down()
        return dict(self.timings)

    @property
    def ca_file(self) -> Path:
        assert self.pki is not None, "the lab is not started"
        return self.pki.ca_file

    def client_command(self, *args: str) -> list[str]:
        """Run ``python -m <args>`` in the client namespace (the volunteer's machine)."""
        return ["ip", "netns", "exec", self.plan.ns("client"), sys.executable, "-m", *args]

    @property
    def endpoint_lists(self) -> Path:
        """The endpoint-list override pointing at this run (``--endpoints`` of the tests)."""
        return self.workdir / "endpoints.toml"

    def write_endpoint_lists(self) -> Path:
        """Write :attr:`endpoint_lists` for the scenario's world; return its path."""
        self.endpoint_lists.write_text(override_toml(self.world, self.plan.endpoint_ip), encoding="utf-8")
        return self.endpoint_lists

    def _endpoint_specs(self) -> list[ServerSpec]:
        """One server per module serving the world endpoints' services."""
        assert self.pki is not None
        certs = {name: str(path) for name, path in self.pki.certs.items()}
        configs = server_configs(self.world, self.plan.endpoint_ip, certs)
        return [
            ServerSpec(f"world-{module.rsplit('.', 1)[-1]}", self.plan.ns("world"), module, config)
            for module, config in configs.items()
        ]

    def _server_specs(self, entries: tuple[Censorship, ...]) -> list[ServerSpec]:
        plan, pki = self.plan, self.pki
        assert pki is not None
        certs = {name: str(path) for name, path in pki.certs.items()}
        sites = [{"address": plan.site_ip(site.domain), "domain": site.domain} for site in SITES]
        return [
            ServerSpec(
                "world-web",
                plan.ns("world"),
                "probe.lab.webserver",
                {
                    "mode": "sites",
                    "listeners": sites,
                    "certs": {d: p for d, p in certs.items() if d in SITE_BY_DOMAIN},
                },
            ),
            ServerSpec(
                "world-dns",
                plan.ns("world"),
                "probe.lab.dnsserver",
                {"address": plan.public_resolver_ip, "zone": plan.zone()},
            ),
            ServerSpec(
                "isp-dns",
                plan.ns("isp"),
                "probe.lab.dnsserver",
                {
                    "address": plan.isp_resolver_ip,
                    "zone": {BLOCKPAGE_DOMAIN: plan.blockpage_ip},
                    "upstream": plan.public_resolver_ip,
                    "upstream_timeout": UPSTREAM_TIMEOUT,
                    "rules": censor.resolver_rules(plan, entries),
                },
            ),
            ServerSpec(
                "isp-blockpage",
                plan.ns("isp"),
                "probe.lab.webserver",
                {
                    "mode": "isp",
                    "listeners": [{"address": plan.blockpage_ip, "domain": BLOCKPAGE_DOMAIN}],
                    "certs": {BLOCKPAGE_DOMAIN: certs[BLOCKPAGE_DOMAIN]},
                },
            ),
            ServerSpec(
                "world-helper",
                plan.ns("world"),
                "probe.lab.helperserver",
                {
                    "address": plan.helper_ip,
                    "port": 443,
                    "cert": certs[HELPER_DOMAIN],
                    "allow": [plan.world_space],
                    "resolvers": [f"{plan.public_resolver_ip}:53"],
                    "ca_file": str(pki.ca_file),
                    "asn_database": str(self.workdir / "lab-asn.toml"),
                    "country_database": str(self.workdir / "lab-cc.csv"),
                    "timeout": HELPER_TIMEOUT,
                },
            ),
            ServerSpec(
                "isp-proxy",
                plan.ns("isp"),
                "probe.lab.proxy",
                {"port": PROXY_PORT, "rules": censor.proxy_rules(entries)},
            ),
            *self._endpoint_specs(),
        ]

    def write_probe_settings(self) -> Path:
        """Write ``settings.toml``, ``lab-asn.toml`` and ``lab-cc.csv``; return the settings path."""
        plan = self.plan
        asn_lines = [
            "# IP -> ASN for the lab network (probe.ipinfo TOML format). Generated by probe lab.",
            "[networks]",
            f'"{plan.isp_space}" = {ISP_ASN}',
            *(f'"{plan.site_ip(site.domain)}/32" = {site.asn}' for site in SITES),
            f'"{plan.public_resolver_ip}/32" = {PUBLIC_DNS_ASN}',
            f'"{plan.helper_ip}/32" = {HELPER_ASN}',
            *(
                f'"{plan.endpoint_ip(endpoint.name)}/32" = {endpoint.asn}'
                for endpoint in self.world.endpoints
                if endpoint.asn is not None
            ),
        ]
        asn_path = self.workdir / "lab-asn.toml"
        asn_path.write_text("\n".join(asn_lines) + "\n", encoding="utf-8")
        fingerprints_path = self.workdir / "lab-fingerprints.csv"
        fingerprints_path.write_text(lab_fingerprints(plan), encoding="utf-8")
        cc_path = self.workdir / "lab-cc.csv"
        cc_path.write_text(f"network,cc\n{plan.isp_space},{PROBE_COUNTRY}\n", encoding="utf-8")
        settings = [
            f"# The probe's view of lab run {plan.prefix}. Generated by probe lab.",
            "[measure]",
            f'resolvers = ["{plan.public_resolver_ip}:53"]',
            f"ca_file = {json.dumps(str(self.ca_file))}",
            "",
            "[control]",
            f'url = "https://{HELPER_DOMAIN}/"',
            "",
            "[tests]",  # the round's families would aim at the real services: the lab runs them as nettests
            "whatsapp = false",
            "telegram = false",
            "signal = false",
            "facebook_messenger = false",
            "http3 = false",
            "",
            "[network]",
            f"asn_database = {json.dumps(str(asn_path))}",
            f'public_networks = ["{plan.world_space}"]',
            f"fingerprints = [{json.dumps(str(fingerprints_path))}]",
        ]
        path = self.workdir / "settings.toml"
        path.write_text("\n".join(settings) + "\n", encoding="utf-8")
        return path
