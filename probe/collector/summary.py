"""The summary columns of a measurement a probe submitted, read off its OONI test keys.

The collector stores each document as it came and fills the store's summary columns
(:class:`probe.model.Summary`) from what the document itself says, so ``probe export``,
``flags`` and ``report`` read a fleet's measurements as they read the probe's own.

Web Connectivity: OONI's keys as they are — ``blocking``, ``accessible``, ``dns_consistency``,
``control_failure``, the first failure of each layer (``dns_experiment_failure``, the TCP
connects, the TLS handshakes, ``http_experiment_failure``). The mechanism is reachprobe's
``x_mechanism`` (and ``x_confirmed``) when the document has it (our probe's). An OONI probe's
has none, and a ``None`` mechanism would read as "not measured" (:mod:`probe.outcome`, rule 1)
— false for a measurement that says ``blocking: "dns"``. So the collector gives the label our
own analysis gives from the same evidence (:mod:`probe.analysis.mechanism`'s per-layer
rules): ``blocking`` false → ``ok``/``down``; ``"dns"`` → the lookup's failure, else loopback
or bogon answers, else ``dns.blockpage``; ``"tcp_ip"`` → the first failed connect's failure;
``"http-failure"`` → the failed TLS handshake's, else the connects' when none succeeded, else
the fetch's (a timeout is ``http.timeout``: the transfer evidence that tells ``http.throttle``
is ours only); ``"http-diff"`` → ``http.diff``; ``null`` → ``control.unreachable`` when the
control failed, else ``down`` (our rule 4: undecided). Never ``confirmed``: that needs a
fingerprint match only our probe makes. Nothing measured at all (no step) stays ``None``.

The other tests, from their OONI keys (ts-018 WhatsApp, ts-019 Facebook Messenger, ts-020
Telegram, ts-023 Tor, ts-029 Signal): the first blocked part decides ``blocking`` (``dns``
for a DNS part, ``tcp_ip`` for endpoints, ``http-failure`` for an HTTPS part), its failure the
mechanism (a part flagged without a failure string: ``<layer>.unknown`` — the layer is known,
the how is not); nothing blocked → ``blocking`` false, ``accessible`` true, ``ok``; the keys
absent → an empty summary. A test this module does not know is stored with an empty
:class:`Summary` (its document is kept whole; it reads "not measured" until a version that
knows it re-derives the columns).

Every value that becomes a column is checked: text of the right type, bounded, without NUL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from probe.analysis.mechanism import dns_label, http_label, tcp_label, tls_label
from probe.ipinfo import is_bogon, is_loopback
from probe.mechanism import Mechanism
from probe.model import Summary

BLOCKING: Final = frozenset({"dns", "tcp_ip", "http-failure", "http-diff"})
DNS_CONSISTENCY: Final = frozenset({"consistent", "inconsistent", "reverse_match"})
MAX_FAILURE_CHARS: Final = 512
MAX_LABEL_CHARS: Final = 64


def summarize(document: Mapping[str, Any]) -> Summary:
    """The :class:`Summary` of a (validated) OONI measurement *document*."""
    keys = document.get("test_keys")
    if not isinstance(keys, Mapping):
        return Summary()
    derive = _BY_TEST.get(str(document.get("test_name")))
    return derive(keys) if derive is not None else Summary()


def web_connectivity(keys: Mapping[str, Any]) -> Summary:
    """Web Connectivity's summary (see the module docstring)."""
    blocking = keys.get("blocking")
    if blocking is not False and blocking not in BLOCKING:
        blocking = None
    accessible = keys.get("accessible")
    accessible = accessible if isinstance(accessible, bool) else None
    consistency = keys.get("dns_consistency")
    connects = _objects(keys.get("tcp_connect"))
    handshakes = _objects(keys.get("tls_handshakes"))
    tcp_failure = next((f for c in connects if (f := _failure(_status(c).get("failure")))), None)
    tls_failure = next((f for h in handshakes if (f := _failure(h.get("failure")))), None)
    summary: dict[str, Any] = {
        "blocking": blocking,
        "accessible": accessible,
        "dns_consistency": consistency if consistency in DNS_CONSISTENCY else None,
        "dns_failure": _failure(keys.get("dns_experiment_failure")),
        "tcp_failure": tcp_failure,
        "tls_failure": tls_failure,
        "http_failure": _failure(keys.get("http_experiment_failure")),
        "control_failure": _failure(keys.get("control_failure")),
    }
    ours = _label(keys.get("x_mechanism"))
    if ours is not None:
        return Summary(mechanism=_member(ours), confirmed=_label(keys.get("x_confirmed")), **summary)
    measured = any(_objects(keys.get(k)) for k in ("queries", "tcp_connect", "tls_handshakes", "requests"))
    if not measured:
        return Summary(**summary)
    return Summary(mechanism=_web_mechanism(keys, summary, connects), **summary)


def _web_mechanism(keys: Mapping[str, Any], s: Mapping[str, Any], connects: list[Mapping[str, Any]]) -> str:
    blocking = s["blocking"]
    if blocking is False:
        return Mechanism.OK if s["accessible"] else Mechanism.DOWN
    if blocking is None:
        return Mechanism.CONTROL_UNREACHABLE if s["control_failure"] is not None else Mechanism.DOWN
    if blocking == "http-diff":
        return Mechanism.HTTP_DIFF
    if blocking == "dns":
        if s["dns_failure"] is not None:
            return dns_label(s["dns_failure"])
        answers = [a for q in _objects(keys.get("queries")) for a in _answers(q)]
        if answers and all(is_loopback(ip) for ip in answers):
            return Mechanism.DNS_LOCALHOST
        if any(is_bogon(ip) for ip in answers):
            return Mechanism.DNS_BOGON
        return Mechanism.DNS_BLOCKPAGE
    if blocking == "tcp_ip":
        return tcp_label(s["tcp_failure"]) if s["tcp_failure"] is not None else "tcp.unknown"
    # "http-failure": the step that decided it — a handshake, else connects that all failed.
    if s["tls_failure"] is not None:
        return tls_label(s["tls_failure"])
    if connects and not any(_status(c).get("success") is True for c in connects):
        return tcp_label(s["tcp_failure"])
    return http_label(s["http_failure"]) if s["http_failure"] is not None else "http.unknown"


# --- the tests beyond websites ----------------------------------------------------------------


def _parts_summary(parts: Iterable[tuple[bool | None, str, Any]]) -> Summary:
    """*parts*: ``(blocked?, blocking value, failure)``; the first blocked one decides."""
    seen = False
    for blocked, blocking, failure in parts:
        if blocked is None:
            continue
        seen = True
        if blocked:
            text = _failure(failure)
            return Summary(
                blocking=blocking,
                accessible=False,
                mechanism=_part_mechanism(blocking, text),
                **{_FAILURE_COLUMN[blocking]: text},
            )
    if not seen:
        return Summary()
    return Summary(blocking=False, accessible=True, mechanism=Mechanism.OK)


_FAILURE_COLUMN: Final = {"dns": "dns_failure", "tcp_ip": "tcp_failure", "http-failure": "http_failure"}


def _part_mechanism(blocking: str, failure: str | None) -> str:
    if blocking == "dns":
        return dns_label(failure) if failure is not None else "dns.unknown"
    if blocking == "tcp_ip":
        return tcp_label(failure) if failure is not None else "tcp.unknown"
    return http_label(failure) if failure is not None else "http.unknown"


def telegram(keys: Mapping[str, Any]) -> Summary:
    """ts-020: the data centres' endpoints (TCP, then HTTP), then Telegram Web."""
    return _parts_summary([
        (_flag(keys, "telegram_tcp_blocking"), "tcp_ip", _first_tcp_failure(keys)),
        (_flag(keys, "telegram_http_blocking"), "http-failure", _first_request_failure(keys)),
        (_status_blocked(keys, "telegram_web_status"), "http-failure", keys.get("telegram_web_failure")),
    ])  # fmt: skip


def whatsapp(keys: Mapping[str, Any]) -> Summary:
    """ts-018: the endpoints (TCP), the registration server and WhatsApp Web (HTTPS)."""
    return _parts_summary([
        (_status_blocked(keys, "whatsapp_endpoints_status"), "tcp_ip", _first_tcp_failure(keys)),
        (_status_blocked(keys, "registration_server_status"), "http-failure",
         keys.get("registration_server_failure")),
        (_status_blocked(keys, "whatsapp_web_status"), "http-failure", keys.get("whatsapp_web_failure")),
    ])  # fmt: skip


def facebook_messenger(keys: Mapping[str, Any]) -> Summary:
    """ts-019: the services' DNS answers, then TCP connects."""
    return _parts_summary([
        (_flag(keys, "facebook_dns_blocking"), "dns", _first_query_failure(keys)),
        (_flag(keys, "facebook_tcp_blocking"), "tcp_ip", _first_tcp_failure(keys)),
    ])  # fmt: skip


def signal(keys: Mapping[str, Any]) -> Summary:
    """ts-029: the backend's HTTPS endpoints."""
    return _parts_summary([
        (_status_blocked(keys, "signal_backend_status"), "http-failure", keys.get("signal_backend_failure")),
    ])  # fmt: skip


def tor(keys: Mapping[str, Any]) -> Summary:
    """ts-023: blocked when no target of any kind (directory ports, OR ports, obfs4) answered."""
    kinds = ("dir_port", "or_port", "or_port_dirauth", "obfs4")
    counts = [(_count(keys.get(f"{k}_total")), _count(keys.get(f"{k}_accessible"))) for k in kinds]
    counted = [(t, a) for t, a in counts if t is not None and a is not None]
    if sum(t for t, _ in counted) == 0:
        return Summary()
    blocked = sum(a for _, a in counted) == 0
    failure = next(
        (t.get("failure") for t in _objects(_values(keys.get("targets"))) if t.get("failure")), None
    )
    return _parts_summary([(blocked, "tcp_ip", failure)])


_BY_TEST: Final[dict[str, Callable[[Mapping[str, Any]], Summary]]] = {
    "web_connectivity": web_connectivity,
    "telegram": telegram,
    "whatsapp": whatsapp,
    "facebook_messenger": facebook_messenger,
    "signal": signal,
    "tor": tor,
}
"""The tests whose keys this module reads; any other is stored with an empty summary."""


# --- reading stranger's JSON defensively ------------------------------------------------------


def _flag(keys: Mapping[str, Any], name: str) -> bool | None:
    value = keys.get(name)
    return value if isinstance(value, bool) else None


def _status_blocked(keys: Mapping[str, Any], name: str) -> bool | None:
    value = keys.get(name)
    return {"ok": False, "blocked": True}.get(value) if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _first_tcp_failure(keys: Mapping[str, Any]) -> Any:
    return next((f for c in _objects(keys.get("tcp_connect")) if (f := _status(c).get("failure"))), None)


def _first_request_failure(keys: Mapping[str, Any]) -> Any:
    return next((r.get("failure") for r in _objects(keys.get("requests")) if r.get("failure")), None)


def _first_query_failure(keys: Mapping[str, Any]) -> Any:
    return next((q.get("failure") for q in _objects(keys.get("queries")) if q.get("failure")), None)


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _values(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, Mapping) else []


def _status(connect: Mapping[str, Any]) -> Mapping[str, Any]:
    status = connect.get("status")
    return status if isinstance(status, Mapping) else {}


def _answers(query: Mapping[str, Any]) -> list[str]:
    return [
        ip
        for a in _objects(query.get("answers"))
        for ip in (a.get("ipv4"), a.get("ipv6"))
        if isinstance(ip, str) and len(ip) <= 64
    ]


def _failure(value: Any) -> str | None:
    """A failure string fit for a column: text, without NUL, cut to :data:`MAX_FAILURE_CHARS`."""
    if not isinstance(value, str) or not value or "\0" in value:
        return None
    return value[:MAX_FAILURE_CHARS]


def _label(value: Any) -> str | None:
    if not isinstance(value, str) or not value or "\0" in value:
        return None
    return value[:MAX_LABEL_CHARS]


def _member(label: str) -> Mechanism | str:
    """A known label as its :class:`Mechanism`; another version's label as the text it is."""
    try:
        return Mechanism(label)
    except ValueError:
        return label
