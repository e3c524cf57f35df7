"""Where the shipped data lives: the repository's ``config/`` directory.

In a wheel it is the package ``probe.defaults`` (see setup.py); in a source checkout or an
editable install it is ``config/`` beside the ``probe`` package.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def config_dir() -> Traversable:
    """The directory holding default settings, target lists, fingerprints and scenarios."""
    source_tree = Path(__file__).resolve().parent.parent / "config"
    if source_tree.is_dir():
        return source_tree
    return resources.files("probe.defaults")
