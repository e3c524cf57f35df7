"""The exceptions that stop the program (bad input, broken storage), never network outcomes.

The tree::

    ProbeError                 base of everything reachprobe raises on purpose
    ├── TargetError            a URL, host name or target list the probe cannot measure
    ├── ConfigError            a setting, resolver address, CA file or config file that is invalid
    ├── StorageError           the database cannot be opened, migrated or written
    └── PrivilegeError         a measurement needs root or CAP_NET_RAW (``probe forensics``)

What the network does (timeouts, resets, NXDOMAIN, bad certificates) is *not* an exception
once a step has recorded it: it becomes a failure string from :mod:`probe.failures`.
Every message is one line that names the offending file, line, field or value, so the CLI
can print it as is and exit with status 2.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base class for errors that stop a command.

    ``exit_code`` is the CLI's exit status for it: 2 (bad input) unless a subclass says
    otherwise.
    """

    exit_code: int = 2


class TargetError(ProbeError):
    """The input to measure (URL, host name, target list row) is malformed or unsupported."""


class ConfigError(ProbeError):
    """A setting is invalid: resolver address, CA file, timeout, configuration file."""


class StorageError(ProbeError):
    """The measurement store cannot be opened, migrated or written."""


class PrivilegeError(ProbeError):
    """A measurement needs privileges this process lacks (raw sockets: root or ``CAP_NET_RAW``)."""
