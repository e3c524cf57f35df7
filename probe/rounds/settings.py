"""Settings: a TOML file validated on load, with defaults that work with no file at all.

Every problem is one line naming the file, the key and what is wrong, raised as
:class:`~probe.errors.ConfigError` before anything is measured or written. Values are
checked for what they will be used as (the CA file is read as PEM, networks parsed as CIDR,
the control and database URLs parsed), and types are strict TOML types: ``"no"`` is not a
boolean and ``"4"`` not a number (an integer is a number, though: ``tcp_timeout = 10``).
A UTF-8 byte order mark at the start of the file is ignored.

The file (all sections and keys optional; ``config/settings.toml`` documents each)::

    [schedule]  interval_minutes, jitter_minutes
    [measure]   concurrency, max_open, stall_after, dns_timeout, tcp_timeout, tls_timeout,
                http_timeout, resolvers, use_system_resolver, ca_file, allow_loopback
    [control]   url, max_in_flight
    [targets]   lists
    [storage]   database_url, retention_days
    [network]   asn_database, public_networks, fingerprints
    [tests]     whatsapp, telegram, signal, facebook_messenger, tor, vpn, sni_blocking, http3,
                throughput, excluded_categories, monthly_budget_bytes, throughput_round_bytes,
                throughput_urls, throughput_reference_url, endpoints
    [upload]    collector_url, token, ca_file, batch_size, timeout, retry_min_minutes,
                retry_max_minutes
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import ssl
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from probe.errors import ConfigError, TargetError
from probe.resources import config_dir
from probe.rounds import runner
from probe.rounds.tomlfile import read_toml
from probe.steps import dns, urls

Seconds = Annotated[StrictFloat, Field(gt=0, le=300)]
"""A duration in seconds: a TOML integer or float (StrictFloat takes ints, never strings)."""


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)  # host bits may be set, as the round allows
    except ValueError:
        raise ValueError(f"{value!r} is not an IP network (CIDR: 10.0.0.0/8, 2001:db8::/32)") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Section):
    interval_minutes: StrictFloat = Field(default=60, gt=0, le=7 * 24 * 60)
    jitter_minutes: StrictFloat = Field(default=5, ge=0, le=24 * 60)


class Measure(_Section):
    concurrency: StrictInt = Field(default=runner.DEFAULT_CONCURRENCY, ge=1, le=1024)
    """Measurements active at once (see :mod:`probe.rounds.runner`)."""
    max_open: StrictInt | None = Field(default=None, ge=1, le=4096)
    """Measurements in progress at once, those waiting on a silent peer included; unset:
    :data:`~probe.rounds.runner.DEFAULT_MAX_OPEN`, or ``concurrency`` if that is higher."""
    stall_after: Seconds = runner.DEFAULT_STALL_AFTER
    """Seconds without anything from the network before a measurement gives its slot up."""
    dns_timeout: Seconds = 4.0
    tcp_timeout: Seconds = 10.0
    tls_timeout: Seconds = 10.0
    http_timeout: Seconds = 10.0
    resolvers: tuple[str, ...] = ("8.8.8.8:53", "https://dns.google/dns-query")
    use_system_resolver: StrictBool = True
    ca_file: Path | None = None
    """PEM file of the CAs to trust instead of the system store; read (and checked) on load."""
    allow_loopback: StrictBool = False
    decoy_sni: str | None = None
    """A decoy host name that settles a web measurement's failed TLS handshake: one more
    handshake to the same address naming it (:func:`probe.nettests.sni_blocking.follow_up`);
    the failure is put down to SNI filtering (``tls.reset.sni``, ``tls.timeout.sni``, …) only
    when that one gets through. Unset: off (a third handshake per failure, and the decoy's name
    on the wire)."""

    @field_validator("decoy_sni")
    @classmethod
    def _decoy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return urls.encode_hostname(value)
        except TargetError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _open_covers_active(self) -> Measure:
        if self.max_open is not None and self.max_open < self.concurrency:
            raise ValueError(f"max_open ({self.max_open}) must be at least concurrency ({self.concurrency})")
        return self

    @property
    def open_limit(self) -> int:
        """``max_open`` as the round applies it."""
        return self.max_open if self.max_open is not None else max(runner.DEFAULT_MAX_OPEN, self.concurrency)

    @field_validator("resolvers")
    @classmethod
    def _parse_resolvers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            dns.parse_resolver(text)  # raises ConfigError with the bad value
        return value

    @field_validator("ca_file")
    @classmethod
    def _read_ca_file(cls, value: Path | None) -> Path | None:
        # Checked here, not at the first TLS handshake: a bad CA file would otherwise cost
        # every measurement of every round (each an error), and look like a working probe.
        if value is not None:
            if "\0" in str(value):
                raise ValueError(f"{str(value)!r} is not a file name (it holds a NUL character)")
            try:
                if not value.is_file():  # never opened then: a FIFO or /dev/zero would not end
                    value.stat()  # says why: no such file, no permission
                    problem = "Is a directory" if value.is_dir() else "not a regular file"
                    raise ValueError(f"cannot read {value}: {problem}")
                ssl.create_default_context(cafile=str(value))
            except ssl.SSLError:  # (an OSError too)
                raise ValueError(f"{value}: no PEM certificate in it") from None
            except OSError as exc:
                raise ValueError(f"cannot read {value}: {exc.strerror or type(exc).__name__}") from None
        return value


class Control(_Section):
    url: str | None = None
    """Test-helper base URL; ``None`` measures without a control (verdicts stay null)."""
    max_in_flight: StrictInt = Field(default=32, ge=1, le=1024)
    """Control requests in flight at once per round (:data:`probe.control.MAX_IN_FLIGHT`): at
    most the helper's ``max_concurrency`` (32 for ours by default), which answers 503 beyond
    it. Every request gets its turn within its wait while ``measure.max_open`` is at most
    twice this."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                urls.split_url(value)  # http or https, with a valid host and port
            except TargetError as exc:
                raise ValueError(str(exc)) from None
        return value


class Targets(_Section):
    lists: tuple[str, ...] = ("targets/global-social.csv", "targets/pakistan.csv")
    """Paths to citizenlab-format CSV files; relative ones are looked up beside the
    settings file, then in the shipped ``config/`` directory."""


class Storage(_Section):
    database_url: str | None = None
    """Any SQLAlchemy URL; ``None`` is SQLite in the platform data directory."""

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None:
            # Imported only when a URL is set: settings load without SQLAlchemy otherwise.
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(value)
            except (ArgumentError, ValueError):  # ValueError: a port that is not a number
                raise ValueError(
                    f"{value!r} is not a database URL (e.g. sqlite:///path or postgresql://…)"
                ) from None
        return value

    retention_days: StrictInt = Field(default=365, ge=1)


class Network(_Section):
    asn_database: Path | None = None
    public_networks: tuple[Annotated[str, AfterValidator(_cidr)], ...] = ()
    """Extra address ranges to treat as public (the lab's 10.x world), in CIDR notation."""
    fingerprints: tuple[Path, ...] = ()
    """Extra blockpage/DNS fingerprint CSV files (OONI schema), matched after the shipped ones."""


class Upload(_Section):
    """Where stored measurements are sent (:mod:`probe.upload`); nothing is sent unless set."""

    collector_url: str | None = None
    """The collector's base URL (OONI collector protocol); ``None``: nothing leaves the machine."""
    token: str | None = Field(default=None, min_length=1, max_length=512, pattern=r"^[\x21-\x7e]+$")
    """Sent as ``Authorization: Bearer …`` when set (a private fleet's operator issues it)."""
    ca_file: Path | None = None
    """PEM file of the CAs to trust for the collector instead of the system store."""
    batch_size: StrictInt = Field(default=50, ge=1, le=1000)
    """Measurements read from the store and sent per batch, oldest first."""
    timeout: Seconds = 30.0
    """Seconds per request to the collector, the answer included."""
    retry_min_minutes: StrictFloat = Field(default=5, gt=0, le=7 * 24 * 60)
    """The first back-off after a failed attempt; each further failure doubles it ..."""
    retry_max_minutes: StrictFloat = Field(default=360, gt=0, le=30 * 24 * 60)
    """... up to this."""

    @model_validator(mode="after")
    def _retry_bounds(self) -> Upload:
        if self.retry_max_minutes < self.retry_min_minutes:
            raise ValueError(
                f"retry_max_minutes ({self.retry_max_minutes:g}) must be at least "
                f"retry_min_minutes ({self.retry_min_minutes:g})"
            )
        return self

    @field_validator("collector_url")
    @classmethod
    def _collector_url(cls, value: str | None) -> str | None:
        if value is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(value)
            if parts.username is not None or parts.password is not None:
                # It would be printed by `probe status` and logged: a token is kept apart.
                raise ValueError("no user or password in the URL (a credential goes in upload.token)")
            if parts.query or parts.fragment:
                raise ValueError("the collector's base URL takes no query or fragment")
        return Control._http_url(value)

    @field_validator("ca_file")
    @classmethod
    def _read_ca_file(cls, value: Path | None) -> Path | None:
        return Measure._read_ca_file(value)


CATEGORY_CODES = frozenset({
    "ALDR", "REL", "PORN", "PROV", "POLR", "HUMR", "ENV", "MILX", "HATE", "NEWS", "XED", "PUBH", "GMB",
    "ANON", "DATE", "GRP", "LGBT", "FILE", "HACK", "COMT", "MMED", "HOST", "SRCH", "GAME", "CULTR",
    "ECON", "GOVT", "COMM", "CTRL", "IGO", "MISC",
})  # fmt: skip
"""The citizenlab test-lists category codes (``lists/00-LEGEND-new_category_codes.csv``, and
OONI's ``MISC``)."""


def _category(value: str) -> str:
    if value not in CATEGORY_CODES:
        raise ValueError(f"{value!r} is not a citizenlab category code (NEWS, POLR, GRP, ANON, …)")
    return value


class Tests(_Section):
    """What a round measures besides the web list (:mod:`probe.rounds.families`); the volunteer's choice.

    The web test always runs. Each family is on or off; the ones that can put a volunteer at
    risk or cost a metered link are off until the volunteer turns them on (the README says
    what each sends, where, and how many bytes).
    """

    whatsapp: StrictBool = True
    telegram: StrictBool = True
    signal: StrictBool = True
    facebook_messenger: StrictBool = True
    tor: StrictBool = False
    """Off: connecting to Tor relays is itself what some networks watch for and some
    countries' volunteers asked to leave out (ooni/probe#2232, #2265)."""
    vpn: StrictBool = False
    """Off: VPN handshakes draw the same attention as Tor; and it measures only the endpoints
    an operator lists (``endpoints``)."""
    sni_blocking: StrictBool = False
    """Off: it puts each listed name (opposition sites among them) in a ClientHello to a third
    party's server (``example.org`` unless the list names another), and OONI keeps it out of its
    default suites (experimental)."""
    http3: StrictBool = True
    throughput: StrictBool = False
    """Off: it downloads up to ``throughput_round_bytes`` every round, which a metered link pays
    for; and it needs a media URL (``throughput_urls``)."""
    excluded_categories: tuple[Annotated[str, AfterValidator(_category)], ...] = ()
    """citizenlab category codes whose URLs the web list leaves out (e.g. ``["PORN", "LGBT"]``)."""
    monthly_budget_bytes: StrictInt | None = Field(default=2 * 1024**3, ge=1)
    """Bytes the families may use in a calendar month (UTC); once spent, the heavy ones
    (``throughput``) stop until the next month. ``None`` (unset): no limit."""
    throughput_round_bytes: StrictInt = Field(default=2 * 1024**2, ge=64 * 1024, le=1024**3)
    """The most the throughput test downloads in one round, all its URLs together."""
    throughput_urls: tuple[str, ...] = ()
    """Media objects to time (http/https), e.g. a file on the host the volunteer's messaging
    app downloads media from."""
    throughput_reference_url: str | None = None
    """An object on a host no censor shapes, downloaded the same way: the volunteer's own line
    speed, which the media's speed is compared with (besides the control's)."""
    endpoints: Path | None = None
    """An endpoint-list file overriding the shipped lists of the families it names
    (:mod:`probe.nettests.endpoints`); relative to the settings file."""

    @field_validator("throughput_urls")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            Control._http_url(url)
        return value

    @field_validator("throughput_reference_url")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return Control._http_url(value)

    @classmethod
    def web_only(cls) -> Tests:
        """Every family off: a round of the web list alone (what loopback tests and benchmarks
        use, since the families measure the real services)."""
        return cls.model_validate(dict.fromkeys(FAMILY_NAMES, False))

    def enabled(self) -> tuple[str, ...]:
        """The families switched on, in the order of the fields."""
        return tuple(name for name in FAMILY_NAMES if getattr(self, name))


FAMILY_NAMES = (
    "whatsapp", "telegram", "signal", "facebook_messenger", "tor", "vpn", "sni_blocking", "http3",
    "throughput",
)  # fmt: skip
"""The families a round may run besides the web test, as ``[tests]`` names them."""


class Settings(_Section):
    schedule: Schedule = Schedule()
    measure: Measure = Measure()
    control: Control = Control()
    targets: Targets = Targets()
    storage: Storage = Storage()
    network: Network = Network()
    tests: Tests = Tests()
    upload: Upload = Upload()
    source: Path | None = Field(default=None, exclude=True)

    def digest(self) -> str:
        """A short stable hash of the effective settings, stored with every round."""
        # Not [upload]: where results go changes nothing measured (and keeps the token out).
        text = json.dumps(self.model_dump(mode="json", exclude={"upload"}), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def target_list_paths(self) -> list[Path | Traversable]:
        """Resolve ``targets.lists`` to readable files (beside the settings file, then shipped)."""
        resolved: list[Path | Traversable] = []
        for name in self.targets.lists:
            path = Path(name).expanduser()
            if not path.is_absolute() and self.source is not None:
                path = self.source.parent / path
            if path.is_file():
                resolved.append(path)
                continue
            shipped = config_dir().joinpath(name)
            if shipped.is_file():
                resolved.append(shipped)
                continue
            where = f"{self.source}: " if self.source else ""
            raise ConfigError(f"{where}targets.lists: no such target list: {name}")
        return resolved


def load_settings(path: Path | None) -> Settings:
    """Load and validate *path*; ``None`` gives the defaults.

    Raises:
        ConfigError: the file is unreadable, not TOML, or a key is unknown or invalid.
    """
    if path is None:
        return Settings()
    data = read_toml(path, what="settings")
    if "source" in data:  # a field of ours, not a setting: never taken from the file
        raise ConfigError(f"{path}: source: unknown setting")
    try:
        return Settings.model_validate({**data, "source": path})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{path}: {key}: {_message(error)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: measure.resolvers: {exc}") from None


def _message(error: object) -> str:
    assert isinstance(error, dict)
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        return "unknown setting"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind.endswith("_type") and "input" in error:  # a string where a number belongs: show it
        shown = repr(error["input"])
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return " ".join(message.split())  # one line, whatever a validator said
