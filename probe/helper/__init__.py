"""The control vantage: the OONI-compatible test helper behind ``probe helper serve``.

An operator runs it outside the censored country (a VPS). For each control request it
measures the URL with the probe's own step modules (DNS, TCP, TLS, HTTP) and answers in the
OONI test-helper wire format (reference §1.2), so a probe can use ours or OONI's. It serves
strangers on the open Internet, so it is bounded everywhere and refuses to be a way into
private networks. The modules, one job each:

- :mod:`.wire`: the control request and response as JSON (parse, validate, serialise);
  shared with the client in :mod:`probe.control`, and free of server dependencies;
- :mod:`.policy`: which addresses the helper may connect to (SSRF);
- :mod:`.measure`: the measurement of one control request;
- :mod:`.geo`: the probe's network (ASN, country) as the helper sees it, for ``whoami``;
- :mod:`.app`: the ASGI application (starlette): routes, limits, errors;
- :mod:`.server`: running it with hypercorn (access log off: client addresses are never logged).
"""
