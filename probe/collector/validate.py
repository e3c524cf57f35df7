"""What a stranger may submit: the collector's checks of every request body, before any storage.

The collector serves probes it does not know, so each body is parsed and checked here, in one
place, and any problem becomes a :class:`Refusal` — an HTTP status and one line saying what was
wrong (the field, never the value's bulk) — that the application answers as JSON. Nothing here
does I/O; the limits are :class:`Bounds`.

Checked (``ooni/spec`` bk-003-collector §3.1-3.4, df-000-base):

* the body is UTF-8 JSON, an object, nested at most :attr:`Bounds.max_depth` deep, without
  ``NaN``/``Infinity``, lone surrogates (they cannot be stored as UTF-8) or NUL characters in
  the fields that become columns, and numbers Python can read (a 5,000-digit integer is
  refused, not a crash);
* ``format`` is ``"json"`` (YAML reports are not supported: 400, as §3.2 allows);
* an open request has ``probe_asn`` ``^AS[0-9]{1,10}$``, ``probe_cc`` ``^[A-Z]{2}$``, and
  ``software_name``/``software_version``/``test_version`` ``^[0-9A-Za-z_.+-]+$`` and
  ``test_name`` ``^[a-zA-Z0-9_\\- ]+$`` (the spec's own regular expressions), each at most 64
  characters; ``test_start_time``, when present, OONI's ``YYYY-MM-DD hh:mm:ss``;
* a measurement (``content``) has df-000-base's top-level keys with their types
  (:data:`REQUIRED`, :data:`OPTIONAL`), ``test_keys`` an object, ``input`` a string of at most
  :data:`MAX_INPUT_BYTES` bytes or ``null``, ``test_runtime`` a finite number of seconds within
  a day, and ``measurement_start_time`` within :attr:`Bounds.max_age` in the past and
  :attr:`Bounds.max_ahead` in the future of the collector's clock.

Whether a measurement belongs to the report it is sent to (its ``report_id``, network and test)
is :func:`check_belongs`' question.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from probe.model import OONI_TIME_FORMAT

ASN: Final = re.compile(r"AS[0-9]{1,10}")
CC: Final = re.compile(r"[A-Z]{2}")
SOFTWARE: Final = re.compile(r"[0-9A-Za-z_.+-]{1,64}")
TEST_NAME: Final = re.compile(r"[a-zA-Z0-9_\- ]{1,64}")
DATA_FORMAT_VERSION: Final = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}")
REPORT_ID: Final = re.compile(
    r"([0-9]{8}T[0-9]{6}Z)_([a-z0-9]{1,64})_([A-Z]{2})_([0-9]{1,10})_n1_[A-Za-z0-9]{16}"
)
"""A report id this collector issues (:func:`probe.serialize.new_report_id`): the time it was
opened, the test name without separators, the network, and 16 random letters and digits."""
REPORT_ID_TIME: Final = "%Y%m%dT%H%M%SZ"
MAX_INPUT_BYTES: Final = 2048
"""``input`` becomes a target's URL, a unique index key: PostgreSQL's B-tree entries are capped
near 2.7 kB, and no URL of a test list comes close to this."""
MAX_NAME_CHARS: Final = 256
"""``probe_network_name`` and the other short free-text fields."""
MAX_RUNTIME_S: Final = 86_400.0
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

REQUIRED: Final[Mapping[str, tuple[type, ...]]] = {
    "data_format_version": (str,),
    "input": (str, type(None)),
    "measurement_start_time": (str,),
    "probe_asn": (str,),
    "probe_cc": (str,),
    "report_id": (str,),
    "software_name": (str,),
    "software_version": (str,),
    "test_keys": (dict,),
    "test_name": (str,),
    "test_runtime": (int, float),
    "test_start_time": (str,),
    "test_version": (str,),
}
"""df-000-base's keys every measurement has, and the JSON types each may take."""
OPTIONAL: Final[Mapping[str, tuple[type, ...]]] = {
    "annotations": (dict,),
    "extensions": (dict,),
    "id": (str,),
    "input_hashes": (list,),
    "measurement_uid": (str,),
    "options": (list,),
    "probe_city": (str, type(None)),
    "probe_ip": (str, type(None)),
    "probe_network_name": (str, type(None)),
    "resolver_asn": (str, type(None)),
    "resolver_ip": (str, type(None)),
    "resolver_network_name": (str, type(None)),
    "test_helpers": (dict, list, type(None)),
}
"""Keys a measurement may have (OONI's probes and ours write them); when present, of these types.
Any other top-level key is kept as it came."""


class Refusal(Exception):
    """A request the collector will not take: the HTTP *status* and a one-line *message*."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Bounds:
    """The collector's limits on one request's content."""

    max_depth: int = 64
    """JSON nesting (objects and arrays) a body may have; OONI's measurements use under 10."""
    max_containers: int = 100_000
    """``{`` and ``[`` bytes a body may hold (counted before parsing, strings included): an
    empty object costs Python ~60 times its 2 bytes, so this bounds a body's parsed size. A
    measurement has hundreds; a page's minified scripts inside it, a few tens of thousands."""
    max_age: timedelta = timedelta(days=30)
    """How old a ``measurement_start_time`` may be (a probe that was offline catches up)."""
    max_ahead: timedelta = timedelta(days=1)
    """How far in the future a ``measurement_start_time`` may be (a probe's clock is off)."""


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """A valid request to open a report (bk-003 §3.1)."""

    probe_asn: str
    probe_cc: str
    software_name: str
    software_version: str
    test_name: str
    test_version: str
    test_start_time: datetime | None


def parse_json(body: bytes, bounds: Bounds) -> dict[str, Any]:
    """*body* as a JSON object within *bounds*.

    Raises:
        Refusal: 400: not UTF-8, not JSON, not an object, too deep, too many objects and
            arrays, a non-finite number, an integer too long to read, or a lone surrogate.
    """
    if body.count(b"{") + body.count(b"[") > bounds.max_containers:
        raise Refusal(400, f"the JSON has more than {bounds.max_containers} objects and arrays")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "the body is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise Refusal(400, f"the JSON is nested deeper than {bounds.max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a number over its digit limit
        raise Refusal(400, f"the body is not JSON: {_first_line(str(exc))}") from None
    if not isinstance(value, dict):
        raise Refusal(400, "the body is not a JSON object")
    _check_tree(value, bounds.max_depth)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_tree(root: Any, max_depth: int) -> None:
    """Depth and strings of every value under *root*, without recursion."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > max_depth:
                raise Refusal(400, f"the JSON is nested deeper than {max_depth} levels")
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise Refusal(400, "the JSON has a string with a lone surrogate")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > max_depth:
                raise Refusal(400, f"the JSON is nested deeper than {max_depth} levels")
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                raise Refusal(400, "the JSON has a string with a lone surrogate")
        elif isinstance(value, float) and not math.isfinite(value):
            raise Refusal(400, "the JSON has a number out of range")


def check_format(body: Mapping[str, Any]) -> None:
    """``format`` must be ``"json"`` (absent is taken as JSON, as OONI's probes always send it).

    Raises:
        Refusal: 400 for ``"yaml"`` or anything else.
    """
    fmt = body.get("format", "json")
    if fmt != "json":
        raise Refusal(400, 'format: only "json" is supported')


def open_request(body: Mapping[str, Any], bounds: Bounds, now: datetime) -> OpenRequest:
    """The report *body* asks to open (bk-003 §3.1), checked.

    Deprecated fields (``content``, ``input_hashes``, ``probe_ip``, ``test_helper``) are
    ignored, ``probe_ip`` above all: it is never read, logged or stored.

    Raises:
        Refusal: 400 naming the first invalid or missing field.
    """
    check_format(body)
    asn = _matching(body, "probe_asn", ASN)
    cc = _matching(body, "probe_cc", CC)
    started: datetime | None = None
    if body.get("test_start_time") is not None:
        started = _time(body, "test_start_time")
        _within_window("test_start_time", started, bounds, now)
    return OpenRequest(
        probe_asn=asn,
        probe_cc=cc,
        software_name=_matching(body, "software_name", SOFTWARE),
        software_version=_matching(body, "software_version", SOFTWARE),
        test_name=_matching(body, "test_name", TEST_NAME),
        test_version=_matching(body, "test_version", SOFTWARE),
        test_start_time=started,
    )


def submission_content(body: Mapping[str, Any]) -> dict[str, Any]:
    """The measurement of a submission ``{"format": "json", "content": {…}}`` (bk-003 §3.2).

    Raises:
        Refusal: 400: another format, or ``content`` missing or not an object.
    """
    check_format(body)
    content = body.get("content")
    if not isinstance(content, dict):
        raise Refusal(400, "content: missing or not a JSON object")
    return content


def check_measurement(doc: Mapping[str, Any], bounds: Bounds, now: datetime) -> datetime:
    """Check *doc*'s df-000-base envelope; return its ``measurement_start_time`` (aware UTC).

    Raises:
        Refusal: 400 naming the first missing, mistyped or invalid key.
    """
    for key, types in REQUIRED.items():
        if key not in doc:
            raise Refusal(400, f"content.{key}: missing")
        _typed(doc, key, types)
    for key, types in OPTIONAL.items():
        if key in doc:
            _typed(doc, key, types)
    _matching(doc, "probe_asn", ASN, where="content.")
    _matching(doc, "probe_cc", CC, where="content.")
    _matching(doc, "test_name", TEST_NAME, where="content.")
    _matching(doc, "software_name", SOFTWARE, where="content.")
    _matching(doc, "software_version", SOFTWARE, where="content.")
    _matching(doc, "test_version", SOFTWARE, where="content.")
    _matching(doc, "data_format_version", DATA_FORMAT_VERSION, where="content.")
    input_ = doc["input"]
    if isinstance(input_, str) and (len(input_.encode("utf-8")) > MAX_INPUT_BYTES or "\0" in input_):
        raise Refusal(400, f"content.input: longer than {MAX_INPUT_BYTES} bytes or has a NUL")
    for key in ("probe_network_name", "measurement_uid", "id"):
        value = doc.get(key)
        if isinstance(value, str) and (len(value) > MAX_NAME_CHARS or "\0" in value):
            raise Refusal(400, f"content.{key}: longer than {MAX_NAME_CHARS} characters or has a NUL")
    runtime = doc["test_runtime"]
    if isinstance(runtime, bool) or not 0 <= runtime <= MAX_RUNTIME_S:
        raise Refusal(400, f"content.test_runtime: not a number of seconds in 0-{MAX_RUNTIME_S:g}")
    _time(doc, "test_start_time", where="content.")
    started = _time(doc, "measurement_start_time", where="content.")
    _within_window("content.measurement_start_time", started, bounds, now)
    return started


def test_part(test_name: str) -> str:
    """*test_name* as a report id spells it: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", test_name.lower())


def parse_report_id(report_id: str) -> tuple[datetime, str, str, str]:
    """``(opened_at, test part, probe_cc, probe_asn)`` of a report id this collector issues.

    Raises:
        Refusal: 400: not a report id of this collector's form.
    """
    found = REPORT_ID.fullmatch(report_id) if len(report_id) <= 128 else None
    if found is None:
        raise Refusal(400, "malformed report id")
    when, test, cc, asn = found.groups()
    try:
        opened = datetime.strptime(when, REPORT_ID_TIME).replace(tzinfo=UTC)
    except ValueError:
        raise Refusal(400, "malformed report id") from None
    return opened, test, cc, f"AS{asn}"


def check_belongs(doc: Mapping[str, Any], report_id: str) -> None:
    """A measurement submitted to *report_id* must say so, and be of its network and test.

    Raises:
        Refusal: 400: ``content.report_id`` differs from the URL's, or the measurement's
            ``probe_cc``, ``probe_asn`` or ``test_name`` differ from the report's.
    """
    if doc["report_id"] != report_id:
        raise Refusal(400, "content.report_id: differs from the report it is submitted to")
    _, test, cc, asn = parse_report_id(report_id)
    if (doc["probe_cc"], doc["probe_asn"]) != (cc, asn):
        raise Refusal(400, "content.probe_cc/probe_asn: differ from the report's network")
    if test_part(doc["test_name"]) != test:
        raise Refusal(400, "content.test_name: differs from the report's test")


def _typed(doc: Mapping[str, Any], key: str, types: tuple[type, ...]) -> None:
    value = doc[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in types))  # int and float: "a number"
        raise Refusal(400, f"content.{key}: not {names}")


_JSON_NAMES: Final = {
    str: "a string", dict: "an object", list: "an array", int: "a number", float: "a number",
    type(None): "null",
}  # fmt: skip


def _matching(body: Mapping[str, Any], key: str, pattern: re.Pattern[str], *, where: str = "") -> str:
    value = body.get(key)
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise Refusal(400, f"{where}{key}: missing or not matching {pattern.pattern}")
    return value


def _time(body: Mapping[str, Any], key: str, *, where: str = "") -> datetime:
    value = body.get(key)
    try:
        if not isinstance(value, str) or len(value) != 19:
            raise ValueError
        return datetime.strptime(value, OONI_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise Refusal(400, f"{where}{key}: not YYYY-MM-DD hh:mm:ss") from None


def _within_window(name: str, when: datetime, bounds: Bounds, now: datetime) -> None:
    if when < now - bounds.max_age:
        raise Refusal(400, f"{name}: older than {bounds.max_age.days} days")
    if when > now + bounds.max_ahead:
        raise Refusal(400, f"{name}: in the future")


def _first_line(text: str, limit: int = 120) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "…"
