"""The endpoint lists the tests beyond websites measure: data files, updatable without a release.

Each family (``telegram``, ``whatsapp``, ``signal``, ``facebook_messenger``, ``tor``, …) ships
one TOML file, ``config/nettests/<family>.toml`` (in the wheel: the package
``probe.defaults``), holding an array of tables named after the family::

    [[telegram]]
    role = "datacenter"          # what the endpoint is to the test (each test names its roles)
    host = "149.154.175.50"      # a host name or an IP address
    ports = [80, 443]

    [[telegram]]
    role = "web"
    url = "https://web.telegram.org/"   # host and port come from the URL

An entry's fields: ``role`` (required), ``host`` (required unless ``url`` gives it), ``ports``
(a list of 1-65535), ``url`` (http/https), ``name`` (the identifier a test uses in its keys,
e.g. Facebook Messenger's ``b_api``), ``server_name`` (the TLS SNI when it is not the host)
and ``params``, a table of strings, integers and booleans for what a family needs beyond these
(a Tor bridge's fingerprint, a WireGuard public key). Anything else is a typo and refused.

An *override* file (``--endpoints FILE``, the settings, the lab) has the same shape and may
hold several families; a family it lists replaces the shipped list of that family whole.
Every problem is a :class:`~probe.errors.ConfigError` whose one line names the file, the line
of the entry's ``[[family]]`` header, the entry and the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from probe import resources
from probe.errors import ConfigError, TargetError
from probe.rounds.tomlfile import read_toml
from probe.steps import urls

ParamValue = str | int | bool
FIELDS = frozenset({"role", "host", "ports", "url", "name", "server_name", "params"})
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


class EntryError(ConfigError):
    """One field of one entry is invalid: ``file:line: family[i].field: problem``."""

    def __init__(self, where: str, label: str, field: str, problem: str) -> None:
        super().__init__(f"{where}: {label}.{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One entry of an endpoint list."""

    family: str
    role: str
    host: str
    """A host name (IDNA-encoded, lower case) or an IP address in canonical form."""
    ports: tuple[int, ...] = ()
    url: str = ""
    """An http(s) URL for the roles fetched over HTTP (``""`` for the others)."""
    name: str = ""
    """The identifier a test uses in its keys; ``""``: the test uses *host*."""
    server_name: str = ""
    """The SNI to send; ``""``: the host name."""
    params: Mapping[str, ParamValue] = field(default_factory=lambda: MappingProxyType({}))
    where: str = ""
    """``file:line`` of the entry, for messages."""

    @property
    def is_address(self) -> bool:
        """Whether *host* is an IP address (no DNS lookup is needed)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def sni(self) -> str:
        """The TLS server name: *server_name*, else *host*."""
        return self.server_name or self.host


@dataclass(frozen=True, slots=True)
class EndpointList:
    """A family's endpoints, and the file they came from."""

    family: str
    source: str
    """The file the list was read from (the shipped one, or the override)."""
    endpoints: tuple[Endpoint, ...]

    def role(self, role: str) -> tuple[Endpoint, ...]:
        """The endpoints of *role*, in file order."""
        return tuple(e for e in self.endpoints if e.role == role)

    def require(self, *roles: str) -> EndpointList:
        """This list, checked to have at least one endpoint of each of *roles*.

        Raises:
            ConfigError: a role is missing (``file: no telegram endpoint with role "web"``).
        """
        for role in roles:
            if not self.role(role):
                raise ConfigError(f'{self.source}: no {self.family} endpoint with role "{role}"')
        return self

    def one(self, role: str) -> Endpoint:
        """The first endpoint of *role*.

        Raises:
            ConfigError: there is none.
        """
        return self.require(role).role(role)[0]


def shipped_path(family: str) -> Path:
    """The shipped list of *family*: ``config/nettests/<family>.toml``."""
    return Path(str(resources.config_dir() / "nettests" / f"{family}.toml"))


def load(family: str, override: Path | None = None, *, fallback: bool = True) -> EndpointList:
    """The endpoints of *family*: from *override* when it lists the family, else the shipped ones.

    Args:
        family: the family's name, the array's name in the files.
        override: a file of the same shape (several families allowed), or ``None``.
        fallback: when *override* does not list *family*, use the shipped list (settings and
            the lab override only some families); ``False``: that is an error (``--endpoints``
            given to one test must be for that test).

    Raises:
        ConfigError: a file cannot be read or is not TOML, an entry is invalid, or *override*
            does not list *family* and *fallback* is false.
    """
    if override is not None:
        found = load_file(override, family)
        if found is not None:
            return found
        if not fallback:
            raise ConfigError(f"{override}: no [[{family}]] entries")
    shipped = load_file(shipped_path(family), family)
    if shipped is None:
        raise ConfigError(f"{shipped_path(family)}: no [[{family}]] entries")
    return shipped


def load_file(path: Path, family: str) -> EndpointList | None:
    """The *family* entries of one file; ``None`` when the file does not list the family.

    Raises:
        ConfigError: as :func:`load`; also when another top-level key of the file is not a
            family's array of tables.
    """
    document = read_toml(path, what="endpoint list")
    text = path.read_text(encoding="utf-8-sig")
    for key, value in document.items():
        if not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            raise ConfigError(f"{path}: {key}: expected [[{key}]] entries (an array of tables)")
    entries = document.get(family)
    if entries is None:
        return None
    lines = _header_lines(text, family)
    endpoints = []
    for index, entry in enumerate(entries):
        line = lines[index] if index < len(lines) else 0
        where = f"{path}:{line}" if line else str(path)
        endpoints.append(parse_entry(entry, family=family, where=where, label=f"{family}[{index}]"))
    return EndpointList(family=family, source=str(path), endpoints=tuple(endpoints))


def _header_lines(text: str, family: str) -> list[int]:
    """The line numbers of the ``[[family]]`` headers, in order (tomllib gives no positions).

    An inline array (``family = [{…}, …]``) has no headers: its entries are named by index
    and file only.
    """
    header = re.compile(rf"^\s*\[\[\s*\"?{re.escape(family)}\"?\s*\]\]")
    return [number for number, line in enumerate(text.splitlines(), start=1) if header.match(line)]


def parse_entry(entry: Mapping[str, Any], *, family: str, where: str, label: str) -> Endpoint:
    """One entry of a file, validated.

    Args:
        entry: the entry's table as parsed.
        family: the family it belongs to.
        where: ``file:line`` for the message (and :attr:`Endpoint.where`).
        label: the entry's name in the message (``telegram[2]``).

    Raises:
        EntryError: the first invalid field.
    """

    def bad(name: str, problem: str) -> EntryError:
        return EntryError(where, label, name, problem)

    for key in entry:
        if key not in FIELDS:
            raise bad(key, f"unknown field (known: {', '.join(sorted(FIELDS))})")
    role = entry.get("role")
    if not isinstance(role, str) or not _IDENTIFIER.fullmatch(role):
        raise bad("role", "required: a lower-case identifier such as datacenter or web")
    name = _string(entry, "name", bad)
    if name and not _IDENTIFIER.fullmatch(name):
        raise bad("name", f"{name!r} is not a lower-case identifier (letters, digits, _)")
    url = _string(entry, "url", bad)
    url_host, url_port = "", 0
    if url:
        try:
            _, url_host, url_port = urls.split_url(url)
        except TargetError as exc:
            raise bad("url", str(exc)) from None
    host_text = _string(entry, "host", bad)
    if not host_text and not url_host:
        raise bad("host", "required (or a url to take it from)")
    try:
        host = urls.encode_hostname(host_text) if host_text else url_host.rstrip(".")
    except TargetError as exc:
        raise bad("host", str(exc)) from None
    ports = entry.get("ports", [url_port] if url_port else [])
    if not isinstance(ports, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports
    ):
        raise bad("ports", "a list of port numbers 1-65535")
    server_name = _string(entry, "server_name", bad)
    if server_name:
        try:
            server_name = urls.encode_hostname(server_name)
        except TargetError as exc:
            raise bad("server_name", str(exc)) from None
    params = entry.get("params", {})
    if not isinstance(params, dict) or not all(
        isinstance(v, str | int | bool) and not isinstance(v, float) for v in params.values()
    ):
        raise bad("params", "a table of strings, integers and booleans")
    return Endpoint(
        family=family,
        role=role,
        host=host,
        ports=tuple(ports),
        url=url,
        name=name,
        server_name=server_name,
        params=MappingProxyType(dict(params)),
        where=where,
    )


def _string(entry: Mapping[str, Any], key: str, bad: Callable[[str, str], EntryError]) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise bad(key, "must be a string")
    return value.strip()
