"""Operator-issued tokens for a private fleet: ``--tokens FILE``, ``Authorization: Bearer TOKEN``.

Without a tokens file the collector takes submissions from anyone, as OONI's does. With one,
every request must carry one of its tokens; a missing or unknown one is answered 401. The
file has one token per line; blank lines and lines starting with ``#`` are skipped. A token
is 16 to 256 visible ASCII characters (no spaces): a short one is a guessable password.

Only the tokens' SHA-256 digests are kept, and a presented token is compared by its digest,
so the comparison's time says nothing about any token's characters.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Final

from probe.errors import ConfigError

TOKEN: Final = re.compile(r"[\x21-\x7e]{16,256}")


class Tokens:
    """The set of accepted tokens (by digest)."""

    def __init__(self, tokens: list[str]) -> None:
        self._digests = frozenset(_digest(t) for t in tokens)

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value presents one of the tokens."""
        if authorization is None:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return _digest(token.strip()) in self._digests


def load_tokens(path: Path) -> Tokens:
    """The tokens in the file at *path*.

    Raises:
        ConfigError: the file cannot be read, a line is not a token (named by its number,
            never its text), or there is no token at all.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"--tokens {path}: {reason}") from None
    tokens: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if TOKEN.fullmatch(line) is None:
            raise ConfigError(
                f"--tokens {path}:{number}: a token is 16-256 visible ASCII characters without spaces"
            )
        tokens.append(line)
    if not tokens:
        raise ConfigError(f"--tokens {path}: no token in the file (nobody could submit)")
    return Tokens(tokens)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
