"""The client of the control vantage (test helper): the control request and ``whoami``.

:func:`call` POSTs the OONI control request for one measurement to a helper — ours or any
OONI-compatible one — and returns its response, or the failure that stands in for it as
``control_failure``: a network failure string from :mod:`probe.steps.failures` (the helper could not
be reached, e.g. ``generic_timeout_error``), ``http_request_failed`` (it answered with a status
other than 200), or ``json_parse_error`` (the body is not a valid control response, or is
larger than :data:`MAX_RESPONSE_BYTES` once decoded: a compression bomb is inflated only that
far, by :mod:`probe.steps.bodies`). A broken or hostile helper never raises here.

How long the probe waits, and how many requests it sends at once, so that no verdict is lost
to the wait (issue 10):

- the helper's budget for one request is :func:`probe.helper.measure.control_budget` of the
  step timeouts, the one definition both sides use. The probe sends it in
  :data:`~probe.helper.measure.BUDGET_HEADER` (our helper then measures within it and answers,
  whatever its own step timeouts) and waits :func:`answer_wait` for the answer: the budget
  plus :data:`~probe.helper.measure.ANSWER_MARGIN_S`;
- at most *max_in_flight* control requests to one helper are in flight at once from this
  process (per event loop: a round), the others wait their turn in order (FIFO), at most one
  wait long: our helper answers 503 beyond its ``max_concurrency`` (32, the default here too),
  and a 503 is a lost verdict. A queued request gets its turn within one budget when at most
  twice *max_in_flight* measurements are in progress (the round's ``max_open``, which a
  round with a control holds to 64 unless it is set). Bounding beats retrying: no request is
  wasted, turns are fair, and a helper that cannot be reached costs a round no more than
  before;
- a 503 that comes anyway (other probes share the helper) is retried after a short pause while
  the wait lasts, with what is left of it as the budget.

:func:`whoami` asks our helper which network (ASN, country) it sees the probe in, so that the
measurement can carry ``probe_asn``/``probe_cc``, and the address it sees the probe at
(``probe_ip``, as OONI's probe services name it). That address is held in memory only, to
scrub it from the measurement (:mod:`probe.privacy`): never logged, never stored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import re
import ssl
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import httpx

from probe import SOFTWARE_NAME, __version__
from probe.helper.measure import ANSWER_MARGIN_S, BUDGET_HEADER, control_budget
from probe.helper.wire import MAX_ENDPOINTS, WireError, parse_response, request_json
from probe.ipinfo import IPNetwork, is_bogon
from probe.model import ControlRequest, ControlResponse
from probe.steps import bodies, failures, http
from probe.steps.urls import endpoint

CONTROL_NOT_CONFIGURED: Final = "control_not_configured"
"""``control_failure`` when no helper is configured (``--control none``)."""
JSON_PARSE_ERROR: Final = "json_parse_error"
MAX_RESPONSE_BYTES: Final = 1024 * 1024
USER_AGENT: Final = f"{SOFTWARE_NAME}/{__version__}"
MAX_IN_FLIGHT: Final = 32
"""Control requests to one helper in flight at once: our helper's default ``max_concurrency``."""
RETRY_PAUSE_S: Final = (0.2, 0.6)
"""The pause before a 503 is retried: random in this range, so that waiting probes spread out."""
_ASN: Final = re.compile(r"AS[0-9]{1,10}")
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def answer_wait(*, dns_timeout: float, tcp_timeout: float, tls_timeout: float, http_timeout: float) -> float:
    """How long the probe waits for the control's answer when it measures with these step
    timeouts: the helper's budget for them (:func:`probe.helper.measure.control_budget`) plus
    :data:`~probe.helper.measure.ANSWER_MARGIN_S`. 27 s with the defaults (4, 10, 10, 10)."""
    budget = control_budget(
        dns_timeout=dns_timeout, tcp_timeout=tcp_timeout, tls_timeout=tls_timeout, http_timeout=http_timeout
    )
    return budget + ANSWER_MARGIN_S


_CC: Final = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class Identity:
    """What the helper's ``whoami`` says about the probe."""

    probe_asn: str
    probe_cc: str
    probe_ip: str | None = field(default=None, repr=False)
    """The probe's address as the helper saw it (``None``: not said). Only to scrub it: it is
    left out of ``repr`` so that no log line or error message carries it."""


class Session:
    """The control call of one measurement and ``whoami`` beside it, both in the background.

    ``whoami`` starts at once (when *ask_whoami*); the control request starts when the first
    hop's DNS is done (:meth:`start`), because it names the addresses the probe found.
    Without a helper (*helper_url* ``None``) nothing is sent and the result is
    :data:`CONTROL_NOT_CONFIGURED`.
    """

    def __init__(
        self,
        helper_url: str | None,
        url: str,
        *,
        port: int,
        timeout: float,
        ssl_context: ssl.SSLContext | None,
        public_networks: tuple[IPNetwork, ...] = (),
        ask_whoami: bool = True,
        max_in_flight: int | None = MAX_IN_FLIGHT,
    ) -> None:
        self._helper, self._url, self._port, self._timeout = helper_url, url, port, timeout
        self._max_in_flight = max_in_flight
        self._context, self._public = ssl_context, public_networks
        self._call: asyncio.Task[tuple[ControlResponse | None, str | None]] | None = None
        self._whoami: asyncio.Task[Identity | None] | None = None
        if helper_url is not None and ssl_context is not None and ask_whoami:
            self._whoami = asyncio.create_task(whoami(helper_url, timeout=timeout, ssl_context=ssl_context))

    def start(self, addresses: list[str]) -> None:
        """Send the control request naming *addresses* (once; nothing without a helper)."""
        if self._helper is None or self._context is None or self._call is not None:
            return
        # Only addresses a public helper may dial: a censor's bogon answer is no endpoint.
        endpoints = [ip for ip in addresses if not is_bogon(ip, public=self._public)]
        request = build_request(self._url, endpoints, port=self._port)
        self._call = asyncio.create_task(
            call(
                self._helper,
                request,
                timeout=self._timeout,
                ssl_context=self._context,
                max_in_flight=self._max_in_flight,
            )
        )

    async def result(self) -> tuple[ControlResponse | None, str | None]:
        """The response, or ``control_failure`` (:data:`CONTROL_NOT_CONFIGURED` without a helper)."""
        return await self._call if self._call is not None else (None, CONTROL_NOT_CONFIGURED)

    async def identity(self) -> Identity | None:
        """What ``whoami`` answered; ``None`` when not asked or not answered."""
        return await self._whoami if self._whoami is not None else None

    async def cancel(self) -> None:
        """Stop what still runs and wait until it has stopped (the measurement itself was
        cancelled or failed, or is done: then nothing runs).

        Awaited, so that no task outlives the measurement: a cancelled task that nobody awaits
        is still pending when the caller returns, and is destroyed pending when its loop ends.
        """
        running = [task for task in (self._call, self._whoami) if task is not None and not task.done()]
        for task in running:
            task.cancel()
        if running:
            # Their outcome is of no interest any more; return_exceptions retrieves it, so that
            # no "exception was never retrieved" is logged either.
            await asyncio.gather(*running, return_exceptions=True)


def build_request(url: str, addresses: Iterable[str], *, port: int) -> ControlRequest:
    """The control request for *url*, naming the endpoints the probe resolved.

    The headers are the ones the probe measures with (OONI's): the helper repeats them.
    """
    endpoints = tuple(dict.fromkeys(endpoint(ip, port) for ip in addresses))[:MAX_ENDPOINTS]
    headers: dict[str, tuple[str, ...]] = {name: (value,) for name, value in http.DEFAULT_HEADERS}
    return ControlRequest(http_request=url, http_request_headers=headers, tcp_connect=endpoints)


async def call(
    helper_url: str,
    request: ControlRequest,
    *,
    timeout: float,
    ssl_context: ssl.SSLContext,
    max_in_flight: int | None = None,
) -> tuple[ControlResponse | None, str | None]:
    """Send *request* to the helper at *helper_url*; give up after *timeout* seconds.

    *timeout* is the wait (:func:`answer_wait`); the helper is asked to answer within it less
    :data:`~probe.helper.measure.ANSWER_MARGIN_S`. With *max_in_flight*, the request first
    waits its turn among this event loop's requests to the same helper (at most *timeout*);
    a 503 is retried while the wait lasts (see the module docstring).

    *ssl_context* is given to httpx, which sets its ALPN list to ``http/1.1``: share it only
    with other httpx users (:attr:`probe.steps.tls.ClientContexts.httpx`).

    Returns:
        ``(response, None)``, or ``(None, control_failure)``: ``generic_timeout_error`` when
        no turn came within *timeout*.
    """
    if max_in_flight is None:
        return await _call(helper_url, request, timeout=timeout, ssl_context=ssl_context)
    gate = _gate(helper_url, max_in_flight)
    try:
        async with asyncio.timeout(timeout):
            await gate.acquire()
    except TimeoutError:
        return None, failures.GENERIC_TIMEOUT
    try:
        return await _call(helper_url, request, timeout=timeout, ssl_context=ssl_context)
    finally:
        gate.release()


def _gate(helper_url: str, max_in_flight: int) -> asyncio.Semaphore:
    """The turns to *helper_url* in this event loop (a round runs in one), shared by its calls."""
    gates = _GATES.setdefault(asyncio.get_running_loop(), {})
    return gates.setdefault((helper_url, max_in_flight), asyncio.Semaphore(max_in_flight))


async def _call(
    helper_url: str, request: ControlRequest, *, timeout: float, ssl_context: ssl.SSLContext
) -> tuple[ControlResponse | None, str | None]:
    """One control request, 503 retried, all within *timeout*."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout
    content = request_json(request)
    while True:
        left = ends - loop.time()
        budget = {BUDGET_HEADER: f"{max(0.0, left - ANSWER_MARGIN_S):.3f}"}
        status, body, failure = await _exchange(
            "POST", helper_url, content=content, timeout=left, ssl_context=ssl_context, extra=budget
        )
        pause = random.uniform(*RETRY_PAUSE_S)
        if status != 503 or ends - loop.time() - pause <= ANSWER_MARGIN_S:
            break
        await asyncio.sleep(pause)
    if failure is not None:
        return None, failure
    if status != 200:
        return None, failures.HTTP_REQUEST_FAILED
    try:
        return parse_response(body), None
    except WireError:
        return None, JSON_PARSE_ERROR


async def whoami(helper_url: str, *, timeout: float, ssl_context: ssl.SSLContext) -> Identity | None:
    """The network and address the helper sees the probe in, e.g. ``AS64500``, ``PK``.

    Returns:
        ``None`` when the helper cannot be reached or gives no valid answer (the measurement
        then keeps ``AS0``/``ZZ``).
    """
    url = str(httpx.URL(helper_url).join("whoami"))
    status, body, failure = await _exchange(
        "GET", url, content=None, timeout=timeout, ssl_context=ssl_context
    )
    if failure is not None or status != 200:
        return None
    return parse_whoami(body)


def parse_whoami(body: bytes) -> Identity | None:
    """The :class:`Identity` in a whoami answer; ``None`` unless ASN and country are well formed.

    ``probe_ip`` is optional (helpers that do not send it still give the network); one that is
    not an IP address is ignored.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    asn, cc = data.get("probe_asn"), data.get("probe_cc")
    if not (isinstance(asn, str) and _ASN.fullmatch(asn) and isinstance(cc, str) and _CC.fullmatch(cc)):
        return None
    ip = data.get("probe_ip")
    return Identity(asn, cc, probe_ip=ip if isinstance(ip, str) and _is_ip(ip) else None)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


async def _exchange(
    method: str,
    url: str,
    *,
    content: bytes | None,
    timeout: float,
    ssl_context: ssl.SSLContext,
    extra: dict[str, str] | None = None,
) -> tuple[int, bytes, str | None]:
    """One request with an overall deadline and a bounded body: ``(status, body, failure)``."""
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Accept-Encoding": bodies.ACCEPT_ENCODING,
        **(extra or {}),
    }
    if content is not None:
        headers["Content-Type"] = "application/json"
    operation: failures.Operation = "http_round_trip"
    try:
        request = httpx.Request(method, url, content=content, headers=headers)
        async with (
            asyncio.timeout(timeout),
            bodies.open_response(request, ssl_context=ssl_context, timeout=timeout) as response,
        ):
            if response.status_code != 200:  # not an answer: its body is not worth reading
                return response.status_code, b"", None
            operation = "read"
            body, truncated = await bodies.read_body(response, MAX_RESPONSE_BYTES)
            if truncated:
                # Larger than any control response once decoded: never parsed, it cannot be
                # one. OONI's string for a body that is not a valid answer fits: the helper
                # did not answer as a helper, whether it sent garbage or a bomb.
                return response.status_code, b"", JSON_PARSE_ERROR
            return response.status_code, body, None
    except failures.NETWORK_EXCEPTIONS as exc:
        return 0, b"", failures.classify(exc, operation)
    except httpx.InvalidURL:
        return 0, b"", failures.HTTP_REQUEST_FAILED
