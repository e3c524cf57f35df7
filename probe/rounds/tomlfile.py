"""Read a TOML file, turning every way it can be unreadable into one line naming the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from probe.errors import ConfigError


def read_toml(path: Path, *, what: str = "", error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """Parse *path* (UTF-8, a leading byte order mark ignored); *what*, if given, names the
    file's kind in the message ("settings").

    Raises:
        error: the file cannot be read, is not UTF-8, or is not TOML (``file: problem``).
    """
    cannot = f"cannot read {what}".rstrip()
    try:
        # utf-8-sig: a byte order mark (Windows editors write one) is not TOML, but harmless.
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise error(f"{path}: {cannot}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: {cannot}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: invalid TOML: {exc}") from None
