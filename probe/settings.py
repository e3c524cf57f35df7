"""Settings: a TOML file validated on load, with defaults that work with no file at all.

Every problem is one line naming the file, the key and what is wrong, raised as
:class:`~probe.errors.ConfigError` before anything is measured or written.

The file (all sections and keys optional; ``config/settings.toml`` documents each)::

    [schedule]  interval_minutes, jitter_minutes
    [measure]   concurrency, max_open, stall_after, dns_timeout, tcp_timeout, tls_timeout,
                http_timeout, resolvers, use_system_resolver, ca_file, allow_loopback
    [control]   url
    [targets]   lists
    [storage]   database_url, retention_days
    [network]   asn_database, public_networks, fingerprints
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from probe import dns, runner
from probe.errors import ConfigError
from probe.resources import config_dir
from probe.tomlfile import read_toml

Seconds = Annotated[float, Field(gt=0, le=300)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Section):
    interval_minutes: float = Field(default=60, gt=0, le=7 * 24 * 60)
    jitter_minutes: float = Field(default=5, ge=0, le=24 * 60)


class Measure(_Section):
    concurrency: int = Field(default=runner.DEFAULT_CONCURRENCY, ge=1, le=1024)
    """Measurements active at once (see :mod:`probe.runner`)."""
    max_open: int | None = Field(default=None, ge=1, le=4096)
    """Measurements in progress at once, those waiting on a silent peer included; unset:
    :data:`~probe.runner.DEFAULT_MAX_OPEN`, or ``concurrency`` if that is higher."""
    stall_after: Seconds = runner.DEFAULT_STALL_AFTER
    """Seconds without anything from the network before a measurement gives its slot up."""
    dns_timeout: Seconds = 4.0
    tcp_timeout: Seconds = 10.0
    tls_timeout: Seconds = 10.0
    http_timeout: Seconds = 10.0
    resolvers: tuple[str, ...] = ("8.8.8.8:53", "https://dns.google/dns-query")
    use_system_resolver: bool = True
    ca_file: Path | None = None
    allow_loopback: bool = False

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


class Control(_Section):
    url: str | None = None
    """Test-helper base URL; ``None`` measures without a control (verdicts stay null)."""


class Targets(_Section):
    lists: tuple[str, ...] = ("targets/global-social.csv", "targets/pakistan.csv")
    """Paths to citizenlab-format CSV files; relative ones are looked up beside the
    settings file, then in the shipped ``config/`` directory."""


class Storage(_Section):
    database_url: str | None = None
    """Any SQLAlchemy URL; ``None`` is SQLite in the platform data directory."""
    retention_days: int = Field(default=365, ge=1)


class Network(_Section):
    asn_database: Path | None = None
    public_networks: tuple[str, ...] = ()
    """Extra address ranges to treat as public (the lab's 10.x world)."""
    fingerprints: tuple[Path, ...] = ()
    """Extra blockpage/DNS fingerprint CSV files (OONI schema), matched after the shipped ones."""


class Settings(_Section):
    schedule: Schedule = Schedule()
    measure: Measure = Measure()
    control: Control = Control()
    targets: Targets = Targets()
    storage: Storage = Storage()
    network: Network = Network()
    source: Path | None = Field(default=None, exclude=True)

    def digest(self) -> str:
        """A short stable hash of the effective settings, stored with every round."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
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
    if error.get("type") == "extra_forbidden":
        return "unknown setting"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")
