"""Property tests: for any input, each parser returns a value or raises its documented error.

The settings loader raises :class:`ConfigError`, the target-list loader :class:`ConfigError`,
``--since``/``--until`` :class:`click.BadParameter`, and :func:`probe.steps.urls.split_url`
:class:`TargetError` — never anything else (a traceback is a bug), and every message is one
line. Inputs are arbitrary bytes and text, and also near-valid documents built from the real
keys, the shapes where a parser is most likely to let a foreign exception through.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.cli.params import When
from probe.errors import ConfigError, TargetError
from probe.rounds.settings import Settings, load_settings
from probe.rounds.targets import Target, load_targets
from probe.steps.urls import split_url

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="reachprobe-properties-") as where:
        yield Path(where)


def _one_line(exc: BaseException) -> None:
    message = str(exc.format_message() if isinstance(exc, click.BadParameter) else exc)
    assert message and "\n" not in message and "\r" not in message, repr(message)


# --- settings ---------------------------------------------------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a JSON string is a TOML basic string


DEFAULTS = Settings()
SECTIONS = {
    name: list(type(getattr(DEFAULTS, name)).model_fields)
    for name in Settings.model_fields
    if name != "source"  # not a section: the file's own path
}
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(["no", "1", "http://", "https://th.example/", "10.0.0.0/33", "/dev/null", "::1", "7d"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))


@st.composite
def settings_documents(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "bogus"]), unique=True, max_size=4)):
        lines.append(f"[{section}]")
        keys = [*SECTIONS.get(section, ["x"]), "unknown_key"]
        for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=4)):
            lines.append(f"{key} = {_toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


def _load_settings(scratch: Path, data: bytes) -> None:
    path = scratch / "settings.toml"
    path.write_bytes(data)
    try:
        assert isinstance(load_settings(path), Settings)
    except ConfigError as exc:
        _one_line(exc)
        assert str(exc).startswith(f"{path}: ")


@FAST
@given(document=settings_documents())
def test_settings_documents_load_or_raise_config_error(scratch: Path, document: str) -> None:
    _load_settings(scratch, document.encode())


@FAST
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_settings_bytes_load_or_raise_config_error(scratch: Path, data: bytes) -> None:
    _load_settings(scratch, data)


# --- target lists -----------------------------------------------------------------------------

cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["http://127.0.0.1/", "https://a.example/?b", '"', '""', "\r", "\n", "\0", "url", ","]),
    st.just("x" * 131_073),  # one past the csv module's field limit
)


@st.composite
def csv_documents(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from(["url", "url,category_code,notes", "name", ""]))
    rows = draw(st.lists(st.lists(cells, max_size=5), max_size=6))
    text = header + "\n" + "".join(",".join(row) + draw(st.sampled_from(["\n", "\r\n", ""])) for row in rows)
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode("utf-8", "surrogatepass")


def _load_targets(scratch: Path, data: bytes) -> None:
    path = scratch / "list.csv"
    path.write_bytes(data)
    try:
        targets = load_targets(path)
    except ConfigError as exc:
        _one_line(exc)
        assert str(exc).startswith(f"{path}:")
        return
    assert all(isinstance(t, Target) and t.url and "\0" not in t.url for t in targets)


@FAST
@given(data=csv_documents())
def test_csv_documents_load_or_raise_config_error(scratch: Path, data: bytes) -> None:
    _load_targets(scratch, data)


@FAST
@given(data=st.binary(max_size=400))
def test_csv_bytes_load_or_raise_config_error(scratch: Path, data: bytes) -> None:
    _load_targets(scratch, data)


# --- --since / --until ------------------------------------------------------------------------

NOW = datetime(2024, 1, 20, 12, tzinfo=UTC)
iso_like = st.from_regex(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,7})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?\Z"
)
ages = st.from_regex(r"\A[0-9]{1,25}[hdwmy]\Z")


@FAST
@given(text=st.one_of(iso_like, ages, st.text(max_size=40)))
def test_when_returns_a_utc_time_or_raises_bad_parameter(text: str) -> None:
    try:
        when = When(now=NOW).convert(text, None, None)
    except click.BadParameter as exc:
        _one_line(exc)
        return
    assert when.tzinfo is UTC or when.utcoffset() == UTC.utcoffset(None)


# --- URLs -------------------------------------------------------------------------------------

url_like = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
    st.one_of(st.text(max_size=20), st.sampled_from(["[::1]", "[::1", "127.0.0.1", "xn--", "a..b", "-a"])),
    st.sampled_from(["", ":", ":0", ":80", ":65536", ":-1", ":x", ":99999999999999999999"]),
    st.text(max_size=20),
)


@FAST
@given(url=st.one_of(url_like, st.text(max_size=60)))
def test_split_url_returns_parts_or_raises_target_error(url: str) -> None:
    try:
        scheme, host, port = split_url(url)
    except TargetError as exc:
        _one_line(exc)
        return
    assert scheme in ("http", "https") and host and 0 < port < 65536
