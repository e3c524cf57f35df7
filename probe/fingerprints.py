"""Known blockpages and DNS answers: the OONI blocking-fingerprints CSV schema, loaded and matched.

A fingerprint file is a CSV with exactly this header (ooni/blocking-fingerprints)::

    name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,expected_countries,source,exp_url,notes

- ``location_found``: ``dns`` (an A/AAAA address or CNAME target), ``body`` (the response
  body, decoded as UTF-8) or ``header.<lower-case name>`` (e.g. ``header.location``,
  ``header.server``);
- ``pattern_type``: ``full`` (equal), ``prefix`` (starts with), ``contains`` (substring) or
  ``regexp`` (Python ``re.search``);
- ``scope``: ``nat`` national, ``isp``, ``prod`` a filtering product's default page, ``inst`` a
  voluntary or opt-in filter (a school, an office, a parental-control subscription such as
  Nayatel Safeweb), ``vbw`` a vague blocking word, ``fp`` a known false positive, ``injb``,
  ``prov``; and reachprobe's ``srv``: a refusal the *site* (or its CDN) serves — a Cloudflare
  challenge, an Akamai "Access Denied", a "not available in your country" geo-block page.

A match on a ``fp`` row means "this is known *not* to be a blockpage" and cancels every other
match on the same response or answer. :attr:`Fingerprint.is_censorship` is False for ``inst``
(opted in or voluntary: not censorship), ``vbw`` (not conclusive), ``fp`` and ``srv`` rows: such
a match still names the mechanism, but does not *confirm* censorship. A ``srv`` row
(:attr:`Fingerprint.is_server_side`) names mechanism ``server.block``; it is OONI's best-known
false positive (ooni/probe#2661), which OONI's own list would file under ``fp``, but unlike
``fp`` it says what the page *is*, so the person reads "refused by the site". A ``srv`` row
only names a match that no other row claims: a censor's page that also says "not available in
your country" is the censor's. Otherwise rows are matched in file order, files in the order
given, so the first listed row names the match.

:func:`default_fingerprints` loads the shipped ``config/fingerprints/*.csv``; operators pass
their own files to :meth:`FingerprintDB.load` beside (or instead of) those.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from probe.errors import ConfigError
from probe.model import HTTPResponse
from probe.resources import config_dir

COLUMNS: Final = (
    "name",
    "scope",
    "other_names",
    "location_found",
    "pattern_type",
    "pattern",
    "confidence_no_fp",
    "expected_countries",
    "source",
    "exp_url",
    "notes",
)
SERVER_SIDE_SCOPE: Final = "srv"
"""reachprobe's scope for refusals served by the site or its CDN (not in OONI's list)."""
SCOPES: Final = frozenset({"nat", "isp", "prod", "inst", "vbw", "fp", "injb", "prov", SERVER_SIDE_SCOPE})
NOT_CENSORSHIP_SCOPES: Final = frozenset({"inst", "vbw", "fp", SERVER_SIDE_SCOPE})
PATTERN_TYPES: Final = frozenset({"full", "prefix", "contains", "regexp"})
_HEADER_LOCATION = re.compile(r"header\.[a-z0-9!#$%&'*+.^_`|~-]+")
_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One row of a fingerprint file."""

    name: str
    scope: str
    location_found: str
    pattern_type: str
    pattern: str
    other_names: tuple[str, ...] = ()
    confidence_no_fp: int | None = None
    expected_countries: tuple[str, ...] = ()
    source: str = ""
    exp_url: str = ""
    notes: str = ""
    origin: str = ""
    """``file:line`` the row was read from."""
    _regexp: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @property
    def is_censorship(self) -> bool:
        """False for opt-in/voluntary (``inst``), vague (``vbw``), false-positive and server-side rows."""
        return self.scope not in NOT_CENSORSHIP_SCOPES

    @property
    def is_server_side(self) -> bool:
        """A refusal the site or its CDN serves (``srv``): ``server.block``, never blocked."""
        return self.scope == SERVER_SIDE_SCOPE

    def matches(self, text: str) -> bool:
        """True when *text* (an answer, a body, a header value) matches the pattern."""
        if self.pattern_type == "full":
            return text == self.pattern
        if self.pattern_type == "prefix":
            return text.startswith(self.pattern)
        if self.pattern_type == "contains":
            return self.pattern in text
        assert self._regexp is not None  # set by the loader for every regexp row
        return self._regexp.search(text) is not None


class FingerprintDB:
    """DNS and HTTP fingerprints, matched in load order."""

    def __init__(self, fingerprints: Iterable[Fingerprint] = ()) -> None:
        """Hold *fingerprints*; regexp rows must come from :meth:`load`."""
        self.fingerprints = tuple(fingerprints)
        self._dns = tuple(fp for fp in self.fingerprints if fp.location_found == "dns")
        self._http = tuple(fp for fp in self.fingerprints if fp.location_found != "dns")

    def __len__(self) -> int:
        return len(self.fingerprints)

    @classmethod
    def load(cls, paths: Iterable[Path | Traversable]) -> FingerprintDB:
        """Read and validate fingerprint CSV files.

        Raises:
            ConfigError: a file is unreadable, its header is not the OONI schema, or a row is
                invalid (``file:line: problem``); a name is defined twice.
        """
        fingerprints: list[Fingerprint] = []
        seen: dict[str, str] = {}
        for path in paths:
            for fingerprint in _read(path):
                first = seen.setdefault(fingerprint.name, fingerprint.origin)
                if first != fingerprint.origin:
                    raise ConfigError(
                        f"{fingerprint.origin}: duplicate fingerprint name {fingerprint.name!r} "
                        f"(first defined at {first})"
                    )
                fingerprints.append(fingerprint)
        return cls(fingerprints)

    def match_dns(self, answers: Iterable[str]) -> Fingerprint | None:
        """The first DNS fingerprint matching one of *answers* (addresses or CNAME targets)."""
        values = [answer for answer in answers if answer]
        return _first_match(self._dns, lambda fp: any(fp.matches(value) for value in values))

    def match_http(self, response: HTTPResponse) -> Fingerprint | None:
        """The first body or header fingerprint matching *response*."""
        body = response.body.decode("utf-8", errors="replace")
        headers: dict[str, list[str]] = {}
        for name, value in response.headers_list:
            headers.setdefault(f"header.{name.lower()}", []).append(value)

        def hit(fp: Fingerprint) -> bool:
            if fp.location_found == "body":
                return fp.matches(body)
            return any(fp.matches(value) for value in headers.get(fp.location_found, ()))

        return _first_match(self._http, hit)


def default_fingerprints() -> FingerprintDB:
    """The shipped fingerprints: every ``config/fingerprints/*.csv``, by file name.

    Raises:
        ConfigError: a shipped file is invalid (a packaging bug).
    """
    directory = config_dir().joinpath("fingerprints")
    files = sorted((f for f in directory.iterdir() if f.name.endswith(".csv")), key=lambda f: f.name)
    return FingerprintDB.load(files)


def load_fingerprints(extra: Iterable[Path]) -> FingerprintDB:
    """The shipped fingerprints followed by the operator's *extra* CSV files.

    Raises:
        ConfigError: a file is unreadable or invalid, or a name is defined twice.
    """
    directory = config_dir().joinpath("fingerprints")
    shipped = sorted((f for f in directory.iterdir() if f.name.endswith(".csv")), key=lambda f: f.name)
    return FingerprintDB.load([*shipped, *extra])


def _first_match(
    candidates: tuple[Fingerprint, ...], hit: Callable[[Fingerprint], bool]
) -> Fingerprint | None:
    found = server = None
    for fingerprint in candidates:
        if hit(fingerprint):
            if fingerprint.scope == "fp":
                return None  # a known false positive: whatever else matched is not a blockpage
            if fingerprint.is_server_side:
                server = server or fingerprint
            else:
                found = found or fingerprint
    return found or server


def _read(path: Path | Traversable) -> list[Fingerprint]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read fingerprints: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read fingerprints: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or tuple(cell.strip() for cell in header) != COLUMNS:
            raise ConfigError(
                f"{path}:1: the header must be {','.join(COLUMNS)} (OONI blocking-fingerprints)"
            )
        rows: list[Fingerprint] = []
        line = reader.line_num
        for row in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            rows.append(_row(row, f"{path}:{start}"))
    except csv.Error as exc:
        raise ConfigError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
    return rows


def _row(row: list[str], origin: str) -> Fingerprint:
    if len(row) != len(COLUMNS):
        raise ConfigError(f"{origin}: expected {len(COLUMNS)} fields, got {len(row)}")
    cells = dict(zip(COLUMNS, (cell.strip() for cell in row), strict=True))
    cells["pattern"] = row[COLUMNS.index("pattern")]  # leading/trailing spaces may be meant
    if not cells["name"]:
        raise ConfigError(f"{origin}: empty name")
    if cells["scope"] not in SCOPES:
        raise ConfigError(f"{origin}: unknown scope {cells['scope']!r} (one of {', '.join(sorted(SCOPES))})")
    location = cells["location_found"]
    if location not in ("dns", "body") and not _HEADER_LOCATION.fullmatch(location):
        raise ConfigError(
            f"{origin}: unknown location_found {location!r} (dns, body or header.<lower-case name>)"
        )
    if cells["pattern_type"] not in PATTERN_TYPES:
        raise ConfigError(
            f"{origin}: unknown pattern_type {cells['pattern_type']!r} (full, prefix, contains or regexp)"
        )
    if not cells["pattern"].strip():
        raise ConfigError(f"{origin}: empty pattern")
    regexp = None
    if cells["pattern_type"] == "regexp":
        try:
            regexp = re.compile(cells["pattern"])
        except re.error as exc:
            raise ConfigError(f"{origin}: invalid regexp {cells['pattern']!r}: {exc}") from None
    confidence = cells["confidence_no_fp"]
    if confidence and not confidence.isdigit():
        raise ConfigError(f"{origin}: confidence_no_fp must be a whole number, not {confidence!r}")
    countries = _split(cells["expected_countries"])
    for country in countries:
        if not _COUNTRY.fullmatch(country):
            raise ConfigError(f"{origin}: expected_countries: {country!r} is not a two-letter country code")
    return Fingerprint(
        name=cells["name"],
        scope=cells["scope"],
        location_found=location,
        pattern_type=cells["pattern_type"],
        pattern=cells["pattern"],
        other_names=_split(cells["other_names"]),
        confidence_no_fp=int(confidence) if confidence else None,
        expected_countries=countries,
        source=cells["source"],
        exp_url=cells["exp_url"],
        notes=cells["notes"],
        origin=origin,
        _regexp=regexp,
    )


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
