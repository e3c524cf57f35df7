"""World endpoints beyond the web sites: the servers the tests beyond websites reach.

A scenario may host extra endpoints in the world namespace (pure data here; the lab starts
them, the censor targets them, the probe finds them through an endpoint-list override)::

    [[endpoints]]
    name = "telegram-dc1"           # lower-case letters, digits, '-'; a censorship target
    names = ["dc1.telegram.lab"]    # optional: DNS names in the lab zone (the public resolver)
    asn = 62041                     # optional: its AS in the probe's IP -> ASN map
    http = [80, 443]                # one port list per service kind (SERVICE_KINDS)
    params = { key = "value" }      # optional: handed to the kinds' servers as is

    [[endpoints.list]]              # optional, repeatable: the entry it makes in the
    family = "telegram"             # endpoint-list override (probe.nettests.endpoints);
    role = "datacenter"             # host = its first DNS name, else its address; ports =
                                    # every port it serves unless given; other fields as there

    [[lists.whatsapp]]              # literal override entries (e.g. for a lab web site)
    role = "web"
    url = "https://web.whatsapp.com/"

Every endpoint gets one address, ``10.N.67.(10+i)`` in file order (:meth:`LabPlan.endpoint_ip
<probe.lab.plan.LabPlan.endpoint_ip>`), inside the lab's "public Internet".

Service kinds (:data:`SERVICE_KINDS`) say which server module serves a port: ``tcp`` accepts
and reads until the client closes, ``http`` answers any request with 200 (plain HTTP on any
port, as Telegram's data centres do on 443), ``https`` the same over TLS with a certificate
for the endpoint's names (and address), ``tls`` completes a handshake then holds the
connection, ``udp`` echoes datagrams. A family that needs a server of its own (QUIC,
WireGuard, OpenVPN) adds a module ``probe.lab.<kind>server`` with ``start(config)`` (see
:mod:`probe.lab.serving`) and one entry here; the lab then starts one process of that module
per run, whose config lists its services (:func:`server_configs`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from probe.errors import ConfigError
from probe.nettests import endpoints as endpoint_lists

ENDPOINT_BASE: Final = 10
"""The last octet of the first endpoint's address (``10.N.67.10``)."""
MAX_ENDPOINTS: Final = 240
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DNS_RE: Final = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}")
_IDENTIFIER: Final = re.compile(r"[a-z][a-z0-9_]*")
PLACEHOLDER_ADDRESS: Final = "192.0.2.1"
"""Stands for an endpoint's address while a scenario is validated (addresses come per run)."""


@dataclass(frozen=True, slots=True)
class ServiceKind:
    """What serves one kind of port: the transport and the server module."""

    transport: Literal["tcp", "udp"]
    module: str
    doc: str
    tls: bool = False
    """Its server needs a certificate (for the endpoint's names and address)."""


SERVICE_KINDS: Final[dict[str, ServiceKind]] = {
    "tcp": ServiceKind("tcp", "probe.lab.endpointserver", "accept, read until the client closes"),
    "http": ServiceKind("tcp", "probe.lab.endpointserver", "plain HTTP: 200 to any request"),
    "https": ServiceKind("tcp", "probe.lab.endpointserver", "TLS, then HTTP: 200 to any request", tls=True),
    "tls": ServiceKind(
        "tcp", "probe.lab.endpointserver", "TLS handshake, then hold the connection", tls=True
    ),
    "udp": ServiceKind("udp", "probe.lab.endpointserver", "echo every datagram"),
    "quic": ServiceKind(
        "udp", "probe.lab.quicserver", "HTTP/3 over QUIC: 200 with a page to any request", tls=True
    ),
    "wireguard": ServiceKind(
        "udp", "probe.lab.vpnserver", "WireGuard: a handshake response to valid initiations of its peers"
    ),
    "openvpn_udp": ServiceKind("udp", "probe.lab.vpnserver", "OpenVPN over UDP: answers the hard reset"),
    "openvpn_tcp": ServiceKind("tcp", "probe.lab.vpnserver", "OpenVPN over TCP: answers the hard reset"),
}


@dataclass(frozen=True, slots=True)
class ListEntry:
    """How a world endpoint appears in the endpoint-list override of one family."""

    family: str
    fields: Mapping[str, Any]
    """The entry's fields as :mod:`probe.nettests.endpoints` reads them, ``host`` left out."""


@dataclass(frozen=True, slots=True)
class WorldEndpoint:
    """One extra endpoint of the world namespace."""

    name: str
    names: tuple[str, ...] = ()
    asn: int | None = None
    services: tuple[tuple[str, int], ...] = ()
    """``(kind, port)`` pairs, in file order."""
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    lists: tuple[ListEntry, ...] = ()

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port it serves, first appearance first."""
        return tuple(dict.fromkeys(port for _, port in self.services))

    @property
    def needs_certificate(self) -> bool:
        return any(SERVICE_KINDS[kind].tls for kind, _ in self.services)


@dataclass(frozen=True, slots=True)
class World:
    """A scenario's extra world: its endpoints and the literal endpoint-list entries."""

    endpoints: tuple[WorldEndpoint, ...] = ()
    lists: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def families(self) -> tuple[str, ...]:
        """Every family the override lists, first appearance first."""
        listed = [entry.family for endpoint in self.endpoints for entry in endpoint.lists]
        return tuple(dict.fromkeys([*listed, *self.lists]))

    def addresses_of(self) -> dict[str, tuple[str, ...]]:
        """Endpoint name → its DNS names (what the plan needs to place it)."""
        return {endpoint.name: endpoint.names for endpoint in self.endpoints}


Fail = Callable[[str, str], ConfigError]
"""``fail(key, problem)``: the scenario validator's error for one key."""


def parse_world(data: Mapping[str, Any], fail: Fail, *, reserved: frozenset[str]) -> World:
    """The ``endpoints`` and ``lists`` of a scenario's parsed TOML.

    Args:
        data: the whole scenario document.
        fail: makes the scenario's one-line error for a key.
        reserved: names an endpoint may not take (the lab's own domains).

    Raises:
        ConfigError: from *fail*, for the first invalid key.
    """
    raw = data.get("endpoints", [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise fail("endpoints", "must be an array of tables ([[endpoints]])")
    if len(raw) > MAX_ENDPOINTS:
        raise fail("endpoints", f"at most {MAX_ENDPOINTS}")
    seen: set[str] = set()
    parsed = []
    for index, item in enumerate(raw):
        endpoint = _endpoint(item, f"endpoints[{index}]", fail)
        for taken in (endpoint.name, *endpoint.names):
            if taken in seen or taken in reserved:
                raise fail(f"endpoints[{index}]", f"{taken!r} is already a lab name")
            seen.add(taken)
        parsed.append(endpoint)
    lists_raw = data.get("lists", {})
    if not isinstance(lists_raw, dict):
        raise fail("lists", "must be a table of [[lists.<family>]] entries")
    lists: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for family, entries in lists_raw.items():
        if not _IDENTIFIER.fullmatch(family):
            raise fail(
                f"lists.{family}", "a family is a lower-case identifier (telegram, facebook_messenger)"
            )
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise fail(f"lists.{family}", f"must be an array of tables ([[lists.{family}]])")
        for index, entry in enumerate(entries):
            _check_entry(family, entry, f"lists.{family}[{index}]", fail)
        lists[family] = tuple(MappingProxyType(dict(e)) for e in entries)
    return World(endpoints=tuple(parsed), lists=MappingProxyType(lists))


def _endpoint(item: Mapping[str, Any], where: str, fail: Fail) -> WorldEndpoint:
    known = {"name", "names", "asn", "params", "list", *SERVICE_KINDS}
    for key in item:
        if key not in known:
            raise fail(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise fail(f"{where}.name", "required: lower-case letters, digits and '-'")
    names = item.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _DNS_RE.fullmatch(n) for n in names):
        raise fail(f"{where}.names", "a list of lower-case DNS names (a.example.lab)")
    asn = item.get("asn")
    if asn is not None and (isinstance(asn, bool) or not isinstance(asn, int) or not 0 < asn < 2**32):
        raise fail(f"{where}.asn", "an AS number")
    services: list[tuple[str, int]] = []
    for kind in SERVICE_KINDS:
        ports = item.get(kind, [])
        if not isinstance(ports, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports
        ):
            raise fail(f"{where}.{kind}", "a list of port numbers 1-65535")
        services += [(kind, port) for port in ports]
    bound = [(SERVICE_KINDS[kind].transport, port) for kind, port in services]
    if len(set(bound)) != len(bound):
        raise fail(where, "two services on one port and transport")
    params = item.get("params", {})
    if not isinstance(params, dict):
        raise fail(f"{where}.params", "must be a table")
    lists_raw = item.get("list", [])
    if not isinstance(lists_raw, list) or not all(isinstance(e, dict) for e in lists_raw):
        raise fail(f"{where}.list", "must be an array of tables ([[endpoints.list]])")
    entries = []
    for index, raw in enumerate(lists_raw):
        entry_where = f"{where}.list[{index}]"
        family = raw.get("family")
        if not isinstance(family, str) or not _IDENTIFIER.fullmatch(family):
            raise fail(f"{entry_where}.family", "required: the family's name (telegram, whatsapp, …)")
        fields = {k: v for k, v in raw.items() if k != "family"}
        if "host" in fields:
            raise fail(
                f"{entry_where}.host", "comes from the endpoint (its first DNS name, else its address)"
            )
        if "url" not in fields:
            fields.setdefault("ports", list(dict.fromkeys(port for _, port in services)))
        _check_entry(
            family, {**fields, "host": names[0] if names else PLACEHOLDER_ADDRESS}, entry_where, fail
        )
        entries.append(ListEntry(family=family, fields=MappingProxyType(fields)))
    return WorldEndpoint(
        name=name,
        names=tuple(names),
        asn=asn,
        services=tuple(services),
        params=MappingProxyType(dict(params)),
        lists=tuple(entries),
    )


def _check_entry(family: str, entry: Mapping[str, Any], where: str, fail: Fail) -> None:
    """Validate one override entry as the probe will read it."""
    try:
        endpoint_lists.parse_entry(entry, family=family, where="", label="")
    except endpoint_lists.EntryError as exc:
        raise fail(f"{where}.{exc.field}", exc.problem) from None


def override_toml(world: World, address_of: Callable[[str], str]) -> str:
    """The endpoint-list override the probe gets (``--endpoints``), as TOML text.

    Args:
        world: the scenario's endpoints and literal entries.
        address_of: endpoint name → its address in this run.
    """
    entries: dict[str, list[dict[str, Any]]] = {}
    for endpoint in world.endpoints:
        host = endpoint.names[0] if endpoint.names else address_of(endpoint.name)
        for entry in endpoint.lists:
            entries.setdefault(entry.family, []).append({"host": host, **entry.fields})
    for family, literal in world.lists.items():
        entries.setdefault(family, []).extend(dict(e) for e in literal)
    lines = ["# Endpoint lists pointing at this lab run (probe.nettests.endpoints). Generated by probe lab."]
    for family, items in entries.items():
        for item in items:
            lines += ["", f"[[{family}]]", *(f"{key} = {_toml(value)}" for key, value in item.items())]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML value for the types an endpoint entry holds (strings, integers, booleans, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"not an endpoint-list value: {value!r}")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml(key)


def server_configs(
    world: World, address_of: Callable[[str], str], certs: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Server module → its config: ``{"services": [{kind, endpoint, address, port, cert, params}]}``.

    Args:
        world: the scenario's endpoints.
        address_of: endpoint name → its address in this run.
        certs: endpoint name → its key + chain PEM file (endpoints with a TLS service).
    """
    configs: dict[str, dict[str, Any]] = {}
    for endpoint in world.endpoints:
        for kind, port in endpoint.services:
            module = SERVICE_KINDS[kind].module
            configs.setdefault(module, {"services": []})["services"].append({
                "kind": kind,
                "endpoint": endpoint.name,
                "address": address_of(endpoint.name),
                "port": port,
                "cert": certs.get(endpoint.name) if SERVICE_KINDS[kind].tls else None,
                "params": dict(endpoint.params),
            })  # fmt: skip
    return configs
