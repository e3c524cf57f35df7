"""A collector serves strangers: every bad input is a 4xx with one line of JSON, never a 500.

On loopback against the real server: malformed and hostile bodies, wrong types, oversized and
slow bodies, compression, tokens, floods. Each answer is checked exactly, and no log record
the collector writes names the client's address.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from probe.collector.app import CollectorSettings, Limits
from probe.collector.tokens import load_tokens
from probe.errors import ConfigError
from tests.collector.documents import SESSION_START, ooni_time, open_request, spec_measurement
from tests.collector.harness import Served, collector_at


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    """One collector (SQLite) for the module, and a report opened on it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'c.sqlite3'}"
    with collector_at(url) as served, httpx.Client(base_url=served.url, timeout=30) as client:
        report_id = client.post("/report", json=open_request()).json()["report_id"]
        yield served, report_id


@pytest.fixture
def client(hostile: tuple[Served, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile[0].url, timeout=30) as c:
        yield c


def one_line_error(r: httpx.Response) -> str:
    """The error message, after checking the answer is a 4xx (or the 503 of a busy collector) of
    one line of JSON ``{"error": …}``."""
    assert 400 <= r.status_code < 500 or r.status_code == 503, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    assert "\n" not in r.text
    body = r.json()
    assert list(body) == ["error"]
    message: str = body["error"]
    return message


DEEP_OBJECT = b'{"a":' * 100 + b"1" + b"}" * 100
BODIES: list[tuple[str, bytes, int, str]] = [
    ("empty", b"", 400, "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ("not UTF-8", b'{"a": "\xff"}', 400, "the body is not UTF-8"),
    ("an array", b"[]", 400, "the body is not a JSON object"),
    ("a string", b'"report"', 400, "the body is not a JSON object"),
    ("NaN", b'{"content": {"x": NaN}}', 400, "the body is not JSON: NaN is not a JSON number"),
    ("Infinity", b'{"x": -Infinity}', 400, "the body is not JSON: -Infinity is not a JSON number"),
    ("1e999", b'{"x": 1e999}', 400, "the JSON has a number out of range"),
    ("lone surrogate", b'{"x": "\\ud800"}', 400, "the JSON has a string with a lone surrogate"),
    ("lone surrogate key", b'{"\\udfff": 1}', 400, "the JSON has a string with a lone surrogate"),
    ("deep object", DEEP_OBJECT, 400, "the JSON is nested deeper than 64 levels"),
    ("very deep array", b"[" * 50_000, 400, "the JSON is nested deeper than 64 levels"),
    ("many containers", b'{"a": [' + b"{}," * 100_000 + b"{}]}", 400,
     "the JSON has more than 100000 objects and arrays"),
    ("yaml", b'{"format": "yaml", "content": "---"}', 400, 'format: only "json" is supported'),
    ("content array", b'{"format": "json", "content": []}', 400, "content: missing or not a JSON object"),
    ("no content", b'{"format": "json"}', 400, "content: missing or not a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "status", "message"), BODIES, ids=[b[0] for b in BODIES])
def test_malformed_bodies(
    hostile: tuple[Served, str], client: httpx.Client, name: str, body: bytes, status: int, message: str
) -> None:
    r = client.post(f"/report/{hostile[1]}", content=body)
    assert (r.status_code, one_line_error(r)) == (status, message)


def test_a_huge_integer_is_refused_not_a_crash(hostile: tuple[Served, str], client: httpx.Client) -> None:
    r = client.post(f"/report/{hostile[1]}", content=b'{"x": ' + b"7" * 5000 + b"}")
    assert r.status_code == 400
    assert one_line_error(r).startswith("the body is not JSON: Exceeds the limit (4300 digits)")


WRONG: list[tuple[str, Any, str]] = [
    ("test_keys", [], "content.test_keys: not an object"),
    ("test_keys", None, "content.test_keys: not an object"),
    ("test_runtime", "5", "content.test_runtime: not a number"),
    ("test_runtime", True, "content.test_runtime: not a number"),
    ("test_runtime", -1, "content.test_runtime: not a number of seconds in 0-86400"),
    ("test_runtime", 1e9, "content.test_runtime: not a number of seconds in 0-86400"),
    ("input", 5, "content.input: not a string or null"),
    ("input", "https://x.example/" + "a" * 3000, "content.input: longer than 2048 bytes or has a NUL"),
    ("input", "https://x.example/\u0000", "content.input: longer than 2048 bytes or has a NUL"),
    ("annotations", "x", "content.annotations: not an object"),
    ("test_helpers", 5, "content.test_helpers: not an object or an array or null"),
    ("probe_network_name", "n" * 300, "content.probe_network_name: longer than 256 characters or has a NUL"),
    ("probe_asn", "30722", "content.probe_asn: missing or not matching AS[0-9]{1,10}"),
    ("probe_cc", "it", "content.probe_cc: missing or not matching [A-Z]{2}"),
    ("test_name", "dummy/../x", "content.test_name: missing or not matching [a-zA-Z0-9_\\- ]{1,64}"),
    ("software_version", "1 2", "content.software_version: missing or not matching [0-9A-Za-z_.+-]{1,64}"),
    ("data_format_version", "x", "content.data_format_version: missing or not matching "
     "[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}"),
    ("measurement_start_time", "2024-01-01T00:00:00Z",
     "content.measurement_start_time: not YYYY-MM-DD hh:mm:ss"),
    ("measurement_start_time", 1700000000, "content.measurement_start_time: not a string"),
    ("measurement_start_time", ooni_time(SESSION_START + timedelta(days=2)),
     "content.measurement_start_time: in the future"),
    ("measurement_start_time", ooni_time(SESSION_START - timedelta(days=31)),
     "content.measurement_start_time: older than 30 days"),
    ("test_start_time", "yesterday", "content.test_start_time: not YYYY-MM-DD hh:mm:ss"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "message"), WRONG, ids=[f"{k}={v!r:.20}" for k, v, _ in WRONG])
def test_wrong_types_and_values(
    hostile: tuple[Served, str], client: httpx.Client, key: str, value: Any, message: str
) -> None:
    doc = spec_measurement(hostile[1], **{key: value})
    r = client.post(f"/report/{hostile[1]}", json={"format": "json", "content": doc})
    assert (r.status_code, one_line_error(r)) == (400, message)


@pytest.mark.parametrize("key", ["test_keys", "report_id", "measurement_start_time", "probe_cc"])
def test_missing_keys(hostile: tuple[Served, str], client: httpx.Client, key: str) -> None:
    doc = spec_measurement(hostile[1])
    del doc[key]
    r = client.post(f"/report/{hostile[1]}", json={"format": "json", "content": doc})
    assert (r.status_code, one_line_error(r)) == (400, f"content.{key}: missing")


OPEN: list[tuple[str, Any, str]] = [
    ("probe_asn", "AS", "probe_asn: missing or not matching AS[0-9]{1,10}"),
    ("probe_asn", None, "probe_asn: missing or not matching AS[0-9]{1,10}"),
    ("probe_cc", "ZZZ", "probe_cc: missing or not matching [A-Z]{2}"),
    ("software_name", "", "software_name: missing or not matching [0-9A-Za-z_.+-]{1,64}"),
    ("test_name", "a" * 65, "test_name: missing or not matching [a-zA-Z0-9_\\- ]{1,64}"),
    ("test_start_time", "2024-01-01", "test_start_time: not YYYY-MM-DD hh:mm:ss"),
    ("test_start_time", "2001-01-01 00:00:00", "test_start_time: older than 30 days"),
    ("format", "yaml", 'format: only "json" is supported'),
]


@pytest.mark.parametrize(("key", "value", "message"), OPEN, ids=[f"{k}={v!r:.20}" for k, v, _ in OPEN])
def test_bad_open_requests(client: httpx.Client, key: str, value: Any, message: str) -> None:
    r = client.post("/report", json=open_request(**{key: value}))
    assert (r.status_code, one_line_error(r)) == (400, message)


def test_oversized_bodies_are_refused(hostile: tuple[Served, str], client: httpx.Client) -> None:
    limit = Limits().max_body_bytes
    big = b'{"x": "' + b"a" * limit + b'"}'
    r = client.post(f"/report/{hostile[1]}", content=big)
    assert (r.status_code, one_line_error(r)) == (413, f"request body larger than {limit} bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"x": "'
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536

    r = client.post(f"/report/{hostile[1]}", content=chunks())
    assert (r.status_code, one_line_error(r)) == (413, f"request body larger than {limit} bytes")


def test_compressed_bodies_are_refused(hostile: tuple[Served, str], client: httpx.Client) -> None:
    r = client.post(f"/report/{hostile[1]}", content=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    assert (r.status_code, one_line_error(r)) == (
        415,
        "Content-Encoding is not supported: send the body uncompressed",
    )


def test_a_slow_body_is_cut_off(tmp_path: Path) -> None:
    settings = CollectorSettings(limits=Limits(body_timeout_s=1.0))
    with collector_at(f"sqlite:///{tmp_path / 'c.sqlite3'}", settings) as served:
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /report HTTP/1.1\r\nHost: c\r\nContent-Length: 100\r\n\r\n{")
            answer = b""
            while not answer.endswith(b"}") and (chunk := sock.recv(65536)):  # head and body may come apart
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {"error": "the request body did not arrive within 1 s"}


def test_requests_beyond_those_in_progress_are_answered_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = CollectorSettings(limits=Limits(max_in_progress=1, body_timeout_s=30))
    with collector_at(f"sqlite:///{tmp_path / 'c.sqlite3'}", settings) as served:
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
            slow.sendall(b"POST /report HTTP/1.1\r\nHost: c\r\nContent-Length: 100\r\n\r\n{")
            with httpx.Client(base_url=served.url, timeout=30) as client:
                deadline = time.monotonic() + 20
                while (r := client.post("/report", json=open_request())).status_code == 200:
                    assert time.monotonic() < deadline, "the slow request never counted as in progress"
                    time.sleep(0.05)
                assert (r.status_code, one_line_error(r)) == (503, "busy: too many requests in progress")
                assert r.headers["retry-after"] == "5"
        # The slow request ended (its connection closed): others are served again.
        with httpx.Client(base_url=served.url, timeout=30) as client:
            deadline = time.monotonic() + 20
            while (r := client.post("/report", json=open_request())).status_code != 200:
                assert time.monotonic() < deadline, r.text
                time.sleep(0.05)
    assert [
        r.getMessage() for r in caplog.records if r.name.startswith("probe")
    ] == []  # a disconnect is no error


def test_a_flood_on_one_report_is_slowed_and_others_are_not(tmp_path: Path) -> None:
    settings = CollectorSettings(limits=Limits(report_rate=0.5, report_burst=5, open_rate=0.5, open_burst=3))
    with (
        collector_at(f"sqlite:///{tmp_path / 'c.sqlite3'}", settings) as served,
        httpx.Client(base_url=served.url, timeout=30) as client,
    ):
        opened = [client.post("/report", json=open_request()) for _ in range(4)]
        assert [r.status_code for r in opened] == [200, 200, 200, 429]
        assert one_line_error(opened[3]) == "too many requests: slow down"
        assert opened[3].headers["retry-after"] == "2"
        flooded, quiet = (r.json()["report_id"] for r in opened[:2])
        answers = [
            client.post(f"/report/{flooded}", json={"format": "json", "content": spec_measurement(flooded)})
            for _ in range(8)
        ]
        assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
        assert all(r.headers["retry-after"] == "2" for r in answers[5:])
        r = client.post(f"/report/{quiet}", json={"format": "json", "content": spec_measurement(quiet)})
        assert r.status_code == 200


def test_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# the fleet\n\nfirst-token-0123456789\nsecond-token-0123456789\n", encoding="utf-8")
    settings = CollectorSettings(tokens=load_tokens(path))
    with (
        collector_at(f"sqlite:///{tmp_path / 'c.sqlite3'}", settings) as served,
        httpx.Client(base_url=served.url, timeout=30) as client,
    ):
        for headers in ({}, {"Authorization": "Bearer nope-nope-nope-nope"},
                            {"Authorization": "Basic second-token-0123456789"}):  # fmt: skip
            r = client.post("/report", json=open_request(), headers=headers)
            assert (r.status_code, one_line_error(r)) == (401, "a valid token is required")
            assert r.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer second-token-0123456789"}
        r = client.post("/report", json=open_request(), headers=good)
        assert r.status_code == 200
        report_id = r.json()["report_id"]
        doc = {"format": "json", "content": spec_measurement(report_id)}
        assert client.post(f"/report/{report_id}", json=doc).status_code == 401
        assert client.post(f"/report/{report_id}/close").status_code == 401
        assert client.post(f"/report/{report_id}", json=doc, headers=good).status_code == 200
        assert client.get("/").json()["authentication"] == "bearer token"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no token in the file (nobody could submit)"),
        ("# only a comment\n", "no token in the file (nobody could submit)"),
        ("good-token-0123456789\nshort\n", ":2: a token is 16-256 visible ASCII characters without spaces"),
        ("with a space in it 0123456789\n", ":1: a token is 16-256 visible ASCII characters without spaces"),
    ],
)
def test_bad_token_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_tokens(path)
    assert (
        str(caught.value) == f"--tokens {path}{message}"
        if message.startswith(":")
        else (str(caught.value) == f"--tokens {path}: {message}")
    )


def test_nothing_logged_names_the_client(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The client connects from 127.0.0.2 (the server listens on 127.0.0.1): that address, and
    its port, must appear in no record the server side logs, errors included."""
    caplog.set_level(logging.DEBUG)
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with (
        collector_at(f"sqlite:///{tmp_path / 'c.sqlite3'}") as served,
        httpx.Client(base_url=served.url, timeout=30, transport=transport) as client,
    ):
        report_id = client.post("/report", json=open_request()).json()["report_id"]
        client.post(f"/report/{report_id}", json={"format": "json", "content": spec_measurement(report_id)})
        client.post(f"/report/{report_id}", content=b"[" * 1000)
        client.post("/report/x")
        r = client.get("/")
        local_port = str(r.extensions["network_stream"].get_extra_info("client_addr")[1])
        assert r.extensions["network_stream"].get_extra_info("client_addr")[0] == "127.0.0.2"
    client_side = ("httpx", "httpcore")  # the test's own client logs where it connects
    text = "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith(client_side)
    )
    assert "127.0.0.2" not in text
    assert f":{local_port}" not in text
