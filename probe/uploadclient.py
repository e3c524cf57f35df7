"""The collector protocol's client: open a report, submit a measurement to it, close it.

OONI's collector protocol (``ooni/spec`` ``backends/bk-003-collector.md``): ``POST /report``
opens a report, ``POST /report/{id}`` submits one measurement to it, ``POST /report/{id}/close``
closes it. What to send, and what an answer means for the measurement, is the uploader's
(:mod:`probe.upload`); this module speaks the protocol and reports the collector's failures.

Answers are hostile until proven otherwise: read through :mod:`probe.steps.bodies` (at most
:data:`MAX_ANSWER_BYTES` decoded, redirects never followed), parsed only when 200, each
request bounded by ``timeout``. Request bodies over :data:`COMPRESS_ABOVE` bytes are
gzip-compressed (the volunteer's bandwidth), as the spec allows; a **415** to a gzip body turns
compression off (for the rest of the process: the daemon's later runs too) and the request is
sent again. A **429 or 503 with Retry-After** (the collector is busy, or its database restarts)
is sent again after the wait it asks for, if that is at most :data:`MAX_RETRY_AFTER_S`, up to
:data:`RETRY_AFTER_TRIES` sends in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

import httpx

from probe import SOFTWARE_NAME, __version__
from probe.rounds.settings import Upload
from probe.steps import bodies, failures
from probe.steps.tls import make_ssl_context

MAX_ANSWER_BYTES: Final = 64 * 1024
"""A collector's answer is a small JSON object; anything longer is not one."""
COMPRESS_ABOVE: Final = 1024
RETRY_AFTER_TRIES: Final = 4
"""Sends of one request a 429 or 503 with ``Retry-After`` may take (then it is a failure)."""
MAX_RETRY_AFTER_S: Final = 30
"""A longer ``Retry-After`` is not waited for within the run: the failure's back-off is."""
INVALID_ANSWER: Final = "collector_invalid_answer"
USER_AGENT: Final = f"{SOFTWARE_NAME}/{__version__}"
_PLAIN_ONLY: set[str] = set()
"""Collectors that answered 415 to gzip in this process: later runs (the daemon's) send them plain
JSON from the start."""


class CollectorFailure(Exception):
    """The collector failed (unreachable, 5xx, an invalid answer): a failure string in ``error``.

    Not a :class:`~probe.errors.ProbeError`: the uploader records it as the attempt's failure and
    stops its run; it never leaves :func:`probe.upload.upload_pending`.
    """

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    data: Any
    """The parsed JSON of a 200 answer (``None`` otherwise, or when it is not JSON)."""
    retry_after: float | None = None
    """A 429's or 503's ``Retry-After`` in seconds, when it gave one we honour."""


class CollectorClient:
    """The collector protocol over one pool of connections (HTTP/1.1, keep-alive when offered)."""

    def __init__(self, url: str, *, token: str | None, ssl_context: ssl.SSLContext, timeout: float) -> None:
        self._base = httpx.URL(url if url.endswith("/") else url + "/")
        self._timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
                         "Accept-Encoding": bodies.ACCEPT_ENCODING}  # fmt: skip
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self.compress = str(self._base) not in _PLAIN_ONLY
        self._transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False, retries=0)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def open_report(self, envelope: dict[str, Any]) -> str:
        """Open a report for *envelope* (the spec's fields) and return its id.

        Raises:
            CollectorFailure: not opened (a network failure, a status other than 200, no valid id).
        """
        answer = await self._post("report", envelope)
        if answer.status != 200:
            raise CollectorFailure(f"http_status_{answer.status}")
        report_id = answer.data.get("report_id") if isinstance(answer.data, dict) else None
        if not (isinstance(report_id, str) and 0 < len(report_id) <= 128 and report_id.isprintable()):
            raise CollectorFailure(INVALID_ANSWER)
        return report_id

    async def submit(self, report_id: str, document: dict[str, Any]) -> tuple[int, str | None]:
        """Submit *document* to *report_id*: ``(status, the id the collector gave or None)``.

        Raises:
            CollectorFailure: a network failure.
        """
        answer = await self._post(f"report/{_quoted(report_id)}", {"format": "json", "content": document})
        if answer.status != 200 or not isinstance(answer.data, dict):
            return answer.status, None
        for key in ("measurement_uid", "measurement_id"):
            uid = answer.data.get(key)
            if isinstance(uid, str) and 0 < len(uid) <= 64 and uid.isprintable():
                return 200, uid
        return 200, None

    async def close_report(self, report_id: str) -> None:
        """Close *report_id*; failures are ignored (a collector closes stale reports itself)."""
        with contextlib.suppress(CollectorFailure):
            await self._post(f"report/{_quoted(report_id)}/close", None)

    async def _post(self, path: str, payload: dict[str, Any] | None) -> _Answer:
        content = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        for attempt in range(RETRY_AFTER_TRIES):
            compressed = self.compress and len(content) > COMPRESS_ABOVE
            answer = await self._send(path, gzip.compress(content, 6) if compressed else content, compressed)
            if compressed and answer.status == 415:  # the spec's answer to an encoding it lacks
                self.compress = False
                _PLAIN_ONLY.add(str(self._base))
                answer = await self._send(path, content, False)
            if answer.retry_after is None or attempt == RETRY_AFTER_TRIES - 1:
                break
            await asyncio.sleep(answer.retry_after)  # it asked us to come back: a busy moment
        return answer

    async def _send(self, path: str, content: bytes, compressed: bool) -> _Answer:
        headers = dict(self._headers)
        if content:
            headers["Content-Type"] = "application/json"
        if compressed:
            headers["Content-Encoding"] = "gzip"
        operation: failures.Operation = "http_round_trip"
        try:
            request = httpx.Request("POST", self._base.join(path), content=content, headers=headers)
            request.extensions = {"timeout": httpx.Timeout(self._timeout).as_dict()}
            async with asyncio.timeout(self._timeout):
                response = await self._transport.handle_async_request(request)
                try:
                    if response.status_code != 200:  # not worth reading: its status says it all
                        return _Answer(response.status_code, None, _retry_after(response))
                    operation = "read"
                    body, truncated = await bodies.read_body(response, MAX_ANSWER_BYTES)
                finally:
                    await response.aclose()
        except failures.NETWORK_EXCEPTIONS as exc:
            raise CollectorFailure(failures.classify(exc, operation)) from None
        except httpx.HTTPError as exc:  # e.g. an invalid URL built from a hostile report id
            raise CollectorFailure(f"{failures.UNKNOWN_PREFIX}{type(exc).__name__}") from None
        if truncated:
            raise CollectorFailure(INVALID_ANSWER)
        try:
            return _Answer(200, json.loads(body))
        except (ValueError, RecursionError):
            return _Answer(200, None)


def _retry_after(response: httpx.Response) -> float | None:
    """The wait a 429 or 503 asks for, if it is whole seconds within :data:`MAX_RETRY_AFTER_S`."""
    value = response.headers.get("retry-after", "").strip()
    if response.status_code not in (429, 503) or not value.isdigit() or len(value) > 6:
        return None
    seconds = int(value)
    return float(seconds) if seconds <= MAX_RETRY_AFTER_S else None


def _quoted(report_id: str) -> str:
    """*report_id* as one path segment: the spec calls it opaque, so nothing in it is trusted."""
    return (
        urllib.parse.quote(report_id, safe="")
        if report_id not in (".", "..")
        else report_id.replace(".", "%2E")
    )


def client_for(settings: Upload) -> CollectorClient:
    """A :class:`CollectorClient` for *settings* (``collector_url`` must be set).

    Raises:
        ConfigError: the CA file cannot be read.
    """
    assert settings.collector_url is not None
    context = make_ssl_context(settings.ca_file, alpn=("http/1.1",))
    return CollectorClient(settings.collector_url, token=settings.token, ssl_context=context,
                           timeout=settings.timeout)  # fmt: skip
