"""The exceptions that stop the program (bad input, a broken environment), never network outcomes.

The tree, with the exit status the ``probe`` command ends with for each::

    ProbeError                 base of everything reachprobe raises on purpose            2
    ├── TargetError            a URL, host name or target list the probe cannot measure  2
    ├── ConfigError            a setting, resolver address, CA file or config file        2
    │   │                      that is invalid
    │   └── DatabaseURLError   a database URL that is not one, or names a database type   2
    │                          this installation cannot open
    ├── StorageError           the database or the data directory cannot be opened,       3
    │                          read or written: a full disk, a read-only or unwritable
    │                          file, a file that is not (or no longer) a database, a
    │                          server that does not answer
    └── PrivilegeError         a measurement needs root or CAP_NET_RAW (``probe forensics``) 2

Exit statuses: **0** the command did its work (a measurement that found blocking included);
**2** bad input — what the command line or a file the user wrote says is wrong, fixed by
changing it; **3** the environment — the input is fine, the machine cannot do it now (free
disk space, make the database writable, start the database server), and the same command
will work once it can. ``probe daemon`` exits 3 never: it logs such a failure and tries
again at the next round. (1 is an unexpected error: a bug; 130 an interrupt.)

What the network does (timeouts, resets, NXDOMAIN, bad certificates) is *not* an exception
once a step has recorded it: it becomes a failure string from :mod:`probe.steps.failures`.
Every message is one line that names the offending file, line, field or value, so the CLI
can print it as is.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
"""The exit status for bad input (the default of every :class:`ProbeError`)."""
EXIT_ENVIRONMENT = 3
"""The exit status for a failure of the machine rather than of the input (:class:`StorageError`)."""


class ProbeError(Exception):
    """Base class for errors that stop a command.

    ``exit_code`` is the CLI's exit status for it: :data:`EXIT_BAD_INPUT` unless a subclass
    says otherwise.
    """

    exit_code: int = EXIT_BAD_INPUT


class TargetError(ProbeError):
    """The input to measure (URL, host name, target list row) is malformed or unsupported."""


class ConfigError(ProbeError):
    """A setting is invalid: resolver address, CA file, timeout, configuration file."""


class StorageError(ProbeError):
    """The measurement store cannot be opened, migrated, read or written (exit status 3).

    The input was fine; the environment was not: the disk is full, the file or its directory
    is read-only, the file is damaged or not a database, the server is down. A retry can
    succeed once that changes, which is what the daemon does.
    """

    exit_code = EXIT_ENVIRONMENT


class DatabaseURLError(ConfigError):
    """The database URL is not one, or names a database type or driver this installation lacks.

    Bad input (exit status 2): nothing was opened, and retrying cannot help, so code that
    retries a store that cannot be opened (the daemon) lets it through.
    """


class PrivilegeError(ProbeError):
    """A measurement needs privileges this process lacks (raw sockets: root or ``CAP_NET_RAW``)."""
