"""reachprobe: network reachability and censorship measurement probe."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

SOFTWARE_NAME = "reachprobe"

try:
    __version__ = version("reachprobe")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
