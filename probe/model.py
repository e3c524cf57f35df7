"""The measurement and each step's result: frozen data, no logic.

Field names follow the OONI data formats (df-000-base, df-002-dnst, df-005-tcpconnect,
df-006-tlshandshake, df-001-httpt) so that our JSON reads like OONI's; where OONI has no
name, ours are snake_case with units in the name. Times ``t0``/``t`` are seconds since the
start of the measurement (OONI's convention). Every step carries ``failure`` (``None`` on
success, otherwise a string from :mod:`probe.steps.failures`) and the ``transaction_id`` that ties
together the steps of one DNS lookup or one endpoint (TCP + TLS + HTTP).

Serialisation to JSON lives in one place: :func:`probe.serialize.as_dict`. The model keeps
typed values (an rcode's name, certificates as DER bytes with a summary, ``None`` for a
response that never came); OONI's encodings of them (the rcode number, BinaryData, the empty
response object, the ``x_`` names of our own keys) are produced only there. So are the
steps' OONI ``tags``: the hop a step belongs to and whether the classic analysis reads it are
typed fields (``depth``, ``classic``), and ``tags`` holds only what is really free-form. Times
are aware UTC ``datetime`` values, written in OONI's format only there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from probe.mechanism import Mechanism

DNSEngine = Literal["getaddrinfo", "udp", "tcp", "doh"]
"""``getaddrinfo`` is the system resolver (df-002-dnst: ``system`` is its legacy name)."""
Blocking = bool | str | None


@dataclass(frozen=True, slots=True)
class DNSAnswer:
    """One resource record of a DNS answer (df-002-dnst ``Answer``)."""

    answer_type: str
    """``A``, ``AAAA`` or ``CNAME``."""
    ipv4: str | None = None
    ipv6: str | None = None
    hostname: str | None = None
    """The target of a CNAME record."""
    ttl: int | None = None
    """``None`` for the system resolver, which does not report TTLs."""
    asn: int = 0
    as_org_name: str = ""


@dataclass(frozen=True, slots=True)
class DNSQuery:
    """One DNS lookup of one name with one engine (df-002-dnst ``queries[]``)."""

    engine: DNSEngine
    resolver_address: str
    """``host:port`` for udp/tcp, the URL for doh, ``""`` for getaddrinfo."""
    hostname: str
    """The name as sent on the wire (IDNA-encoded, lower case)."""
    query_type: str
    """``A``, ``AAAA``, or ``ANY`` for the system resolver (getaddrinfo asks for both)."""
    answers: tuple[DNSAnswer, ...]
    rcode: str | None
    """``NOERROR``, ``NXDOMAIN``, … from the reply; ``None`` when no reply was parsed (and
    for getaddrinfo). Serialised as OONI's number (NOERROR 0, NXDOMAIN 3)."""
    failure: str | None
    t0: float
    t: float
    transaction_id: int = 0
    tags: tuple[str, ...] = ()
    """Free-form tags beyond ``depth`` and ``classic`` (``udp_truncated``)."""
    getaddrinfo_error: int = 0
    """The raw ``EAI_*`` code for the system resolver; 0 otherwise."""
    depth: int | None = None
    """The redirect hop the step belongs to (0: the URL itself, 1: the first redirect's target,
    …); ``None`` for a step measured outside a hop. OONI's ``depth=N`` tag in the JSON."""
    classic: bool = False
    """A lookup of the system resolver, the one OONI's classic analysis reads. OONI's
    ``classic`` tag in the JSON."""

    @property
    def addresses(self) -> tuple[str, ...]:
        """The IPv4 and IPv6 addresses of the answers, in answer order."""
        return tuple(a.ipv4 or a.ipv6 or "" for a in self.answers if a.answer_type in ("A", "AAAA"))


@dataclass(frozen=True, slots=True)
class TCPStatus:
    """The outcome of a TCP connect (df-005-tcpconnect ``status``)."""

    success: bool
    failure: str | None


@dataclass(frozen=True, slots=True)
class TCPConnect:
    """One TCP connect to one ``ip:port`` (df-005-tcpconnect ``tcp_connect[]``)."""

    ip: str
    port: int
    status: TCPStatus
    t0: float
    t: float
    transaction_id: int = 0
    tags: tuple[str, ...] = ()
    """Free-form tags beyond ``depth`` and ``classic``."""
    depth: int | None = None
    """The redirect hop the step belongs to (0: the URL itself, 1: the first redirect's target,
    …); ``None`` for a step measured outside a hop. OONI's ``depth=N`` tag in the JSON."""
    classic: bool = False
    """An endpoint at an address the system resolver returned (OONI's classic analysis reads
    it). OONI's ``classic`` tag in the JSON."""


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """A certificate presented by the server: DER bytes plus a readable summary.

    Serialised as OONI's BinaryData ``{"format": "base64", "data": …}`` in the handshake's
    ``peer_certificates``; the summary goes beside it, in ``x_peer_certificates_info``.
    """

    data: bytes
    """The DER encoding."""
    subject: str
    issuer: str
    not_before: str
    not_after: str
    subject_alt_names: tuple[str, ...]
    sha256: str


@dataclass(frozen=True, slots=True)
class TLSHandshake:
    """One TLS handshake over an established TCP connection (df-006-tlshandshake)."""

    address: str
    """``ip:port`` (IPv6 in brackets)."""
    server_name: str
    """The SNI sent in the ClientHello."""
    cipher_suite: str
    negotiated_protocol: str
    """The ALPN the server chose (``""`` if none)."""
    tls_version: str
    peer_certificates: tuple[PeerCertificate, ...]
    failure: str | None
    t0: float
    t: float
    no_tls_verify: bool = False
    network: str = "tcp"
    transaction_id: int = 0
    tags: tuple[str, ...] = ()
    """Free-form tags beyond ``depth`` and ``classic``."""
    depth: int | None = None
    """The redirect hop the step belongs to (0: the URL itself, 1: the first redirect's target,
    …); ``None`` for a step measured outside a hop. OONI's ``depth=N`` tag in the JSON."""
    classic: bool = False
    """On an endpoint at an address the system resolver returned. OONI's ``classic`` tag in
    the JSON."""


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """The request as sent (df-001-httpt ``request``)."""

    url: str
    method: str
    headers_list: tuple[tuple[str, str], ...]
    body: bytes = b""
    body_is_truncated: bool = False
    x_transport: str = "tcp"
    """OONI's name for the transport under HTTP: ``tcp`` (``udp`` would be HTTP/3)."""


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """The response as received, body capped (df-001-httpt ``response``).

    ``body_length`` and ``title`` are ours, not df-001-httpt's: serialised as
    ``x_body_length`` and ``x_title``.
    """

    code: int
    headers_list: tuple[tuple[str, str], ...]
    body: bytes
    body_is_truncated: bool
    body_length: int
    """Bytes actually read, which is ``len(body)``; kept explicit for summaries."""
    title: str
    """The text of the first ``<title>``, whitespace folded; ``""`` when absent."""


@dataclass(frozen=True, slots=True)
class HTTPTransaction:
    """One HTTP round trip to one pinned address (df-001-httpt ``requests[]``).

    The ``x_`` fields are transfer evidence that OONI's format has no name for (hence the
    prefix, as OONI marks its own non-standard keys). They tell how far the exchange got and
    how fast the body came: a throttled transfer delivers until the deadline, a stalled one
    stops. They are set on success **and** on failure, ``None`` where the exchange did not
    get that far, and omitted from the JSON when ``None``. When set,
    ``t0 <= x_headers_t <= x_body_last_byte_t <= t``.
    """

    address: str
    """``ip:port`` the request was pinned to."""
    request: HTTPRequest
    response: HTTPResponse | None
    """``None`` when no response arrived; serialised as OONI's empty response (code 0)."""
    failure: str | None
    t0: float
    t: float
    alpn: str = ""
    network: str = "tcp"
    transaction_id: int = 0
    tags: tuple[str, ...] = ()
    """Free-form tags beyond ``depth`` and ``classic``."""
    x_headers_t: float | None = None
    """When the status line and headers had arrived (seconds since the measurement began,
    like ``t``); ``None`` when they never did (refused, reset, timed out before them)."""
    x_body_last_byte_t: float | None = None
    """When the last body bytes read arrived; ``None`` when no body byte arrived (an empty
    body, or a failure before any). Bytes are timed as the client reads them: over TLS a
    whole record (up to 16 KiB) at a time, so at low rates deliveries are that coarse."""
    x_body_bytes_received: int | None = None
    """Body bytes received from the network until reading stopped (end of body, body cap,
    or failure): as sent, before ``Content-Encoding`` decoding (gzip), after HTTP/1.1 chunk
    framing; so it may differ from ``response.body_length``. ``0`` when the headers arrived
    but no body byte did; ``None`` when the headers never arrived."""
    depth: int | None = None
    """The redirect hop the step belongs to (0: the URL itself, 1: the first redirect's target,
    …); ``None`` for a step measured outside a hop. OONI's ``depth=N`` tag in the JSON."""
    classic: bool = False
    """Made on an endpoint at an address the system resolver returned. OONI's ``classic``
    tag in the JSON."""


@dataclass(frozen=True, slots=True)
class WebConnectivityTestKeys:
    """The ``test_keys`` of one Web Connectivity measurement.

    The verdict keys mean exactly what OONI's mean (reference §1.3 to 1.5); ``None`` is
    JSON ``null``: undecided. ``mechanism`` and ``confirmed`` are reachprobe's own finer
    labels on top, serialised with OONI's extension prefix as ``x_mechanism`` and
    ``x_confirmed`` (``confirmed`` is the name of the censorship fingerprint that matched, not
    OONI's API boolean of that name). The ``x_*_flags`` are Web Connectivity 0.5.28's bit
    sets (reference §1.6, :mod:`probe.analysis.flags`); ``None`` (omitted) when not computed.
    """

    queries: tuple[DNSQuery, ...] = ()
    tcp_connect: tuple[TCPConnect, ...] = ()
    tls_handshakes: tuple[TLSHandshake, ...] = ()
    requests: tuple[HTTPTransaction, ...] = ()
    """Reverse time order, as OONI's: the last hop of a redirect chain comes first."""
    control: ControlResponse | None = None
    control_failure: str | None = None
    dns_experiment_failure: str | None = None
    http_experiment_failure: str | None = None
    dns_consistency: str | None = None
    body_length_match: bool | None = None
    body_proportion: float = 0.0
    status_code_match: bool | None = None
    headers_match: bool | None = None
    title_match: bool | None = None
    blocking: Blocking = None
    accessible: bool | None = None
    mechanism: Mechanism | None = None
    """One of the closed vocabulary (:mod:`probe.mechanism`); ``None``: nothing was measured."""
    confirmed: str | None = None
    x_blocking_flags: int | None = None
    x_dns_flags: int | None = None
    x_null_null_flags: int | None = None


OONI_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""df-000-base ``measurement_start_time``: UTC, second precision (:mod:`probe.serialize`
formats the model's datetimes with it)."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """The envelope of one measurement of one URL (df-000-base).

    The volunteer's IP address is never recorded: ``probe_ip`` is OONI's redaction marker.
    ``measurement_uid`` is reachprobe's one id of a measurement (JSONL, CSV, the database,
    ``--json``), in the form OONI's collector gives it; ``report_id`` is shared by the
    measurements of one round (one ``probe measure`` invocation), in OONI's form too.
    """

    input: str
    measurement_start_time: datetime
    """When this measurement began: timezone-aware UTC. Serialised as OONI's
    ``YYYY-MM-DD hh:mm:ss`` (:data:`OONI_TIME_FORMAT`, second precision)."""
    test_start_time: datetime
    """When the test (the round, for OONI) began: aware UTC, serialised like
    ``measurement_start_time``."""
    test_runtime: float
    software_name: str
    software_version: str
    test_keys: WebConnectivityTestKeys
    measurement_uid: str
    """``YYYYMMDDhhmmss.ffffff_CC_webconnectivity_<16 hex>``, unique per measurement."""
    report_id: str = ""
    """``YYYYMMDDThhmmssZ_webconnectivity_CC_ASN_n1_<16 chars>``, one per round."""
    test_helper: str | None = None
    """The control (test helper) URL this measurement used; ``None``: no control configured.
    Serialised as OONI's ``test_helpers`` (``{"backend": {"address", "type"}}`` or null)."""
    probe_asn: str = "AS0"
    probe_cc: str = "ZZ"
    probe_network_name: str = ""
    probe_ip: str = "127.0.0.1"
    resolver_asn: str = "AS0"
    resolver_ip: str = ""
    """The system resolver's address as the Internet sees it; ``""``: not known."""
    resolver_network_name: str = ""
    test_name: str = "web_connectivity"
    test_version: str = "0.5.28"
    """The OONI Web Connectivity version whose verdict rules ours reproduce."""
    data_format_version: str = "0.2.0"
    annotations: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Summary:
    """What a measurement found, in the store's summary columns' terms (OONI's keys and ours).

    The same vocabulary as :class:`WebConnectivityTestKeys`: ``blocking`` is ``False``, one
    of ``dns``, ``tcp_ip``, ``http-failure``, ``http-diff``, or ``None`` (undecided);
    ``mechanism`` one of :class:`~probe.mechanism.Mechanism` (``None``: nothing was measured),
    or any text for a measurement received from elsewhere (a collector's); the failures are
    the first failure string of each layer.
    """

    blocking: Blocking = None
    accessible: bool | None = None
    mechanism: Mechanism | str | None = None
    confirmed: str | None = None
    dns_consistency: str | None = None
    dns_failure: str | None = None
    tcp_failure: str | None = None
    tls_failure: str | None = None
    http_failure: str | None = None
    control_failure: str | None = None


@dataclass(frozen=True, slots=True)
class OONIMeasurement:
    """A measurement held as its whole OONI document (df-000-base, JSON-ready), with its summary.

    The tests other than Web Connectivity (messaging apps, circumvention, protocol tests:
    :mod:`probe.nettests`) build their documents themselves, and a collector stores the
    documents probes submit exactly as they came; both go to the store as this. Build one with
    :func:`probe.serialize.ooni_measurement`, which reads the envelope fields off the
    document (so they cannot disagree with it) and clears ``probe_ip``.
    """

    document: Mapping[str, Any]
    """The whole measurement, stored as is (``probe_ip`` is OONI's ``127.0.0.1`` marker)."""
    target: str
    """The series the measurement belongs to (patterns, flags, the dashboard group by it): its
    ``input`` when it has one; for a test without input, a stable name of what it measured
    (``telegram``, ``tor``, …). Stored as the row's ``input`` column and target."""
    summary: Summary
    test_name: str
    measurement_uid: str
    measurement_start_time: datetime
    """Aware UTC, from the document's ``measurement_start_time``."""
    test_runtime: float
    probe_asn: str = "AS0"
    probe_cc: str = "ZZ"
    probe_network_name: str = ""


AnyMeasurement = Measurement | OONIMeasurement
"""What the store takes: a Web Connectivity measurement as the probe made it, or a document."""


# --- the control vantage (OONI test-helper wire format, reference §1.2) ---------------------


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """What the probe asks the test helper to measure for it."""

    http_request: str
    """The URL."""
    http_request_headers: dict[str, tuple[str, ...]]
    tcp_connect: tuple[str, ...]
    """``ip:port`` endpoints the probe resolved."""
    x_quic_enabled: bool = False


@dataclass(frozen=True, slots=True)
class ControlDNS:
    """The helper's DNS lookup: ``failure`` is ``dns_name_error`` for NXDOMAIN (legacy name)."""

    failure: str | None
    addrs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ControlTCPConnect:
    status: bool
    failure: str | None


@dataclass(frozen=True, slots=True)
class ControlTLSHandshake:
    server_name: str
    status: bool
    failure: str | None


@dataclass(frozen=True, slots=True)
class ControlHTTPRequest:
    """The helper's fetch of the final page (it follows redirects itself).

    On failure ``body_length`` and ``status_code`` are -1, as OONI's helper reports them.
    """

    body_length: int
    failure: str | None
    title: str
    headers: dict[str, str]
    status_code: int
    discovered_h3_endpoint: str = ""


@dataclass(frozen=True, slots=True)
class ControlIPInfo:
    """``flags`` bits: 1 resolved by probe, 2 resolved by helper, 4 bogon, 8 valid for domain."""

    asn: int
    flags: int


@dataclass(frozen=True, slots=True)
class ControlResponse:
    """The test helper's answer (``control`` in the test keys)."""

    tcp_connect: dict[str, ControlTCPConnect]
    tls_handshake: dict[str, ControlTLSHandshake]
    http_request: ControlHTTPRequest
    dns: ControlDNS
    ip_info: dict[str, ControlIPInfo]
