"""The lab: a simulated censored Internet in Linux network namespaces.

Three namespaces per run, joined by veth pairs::

    client ──access── isp ──transit── world
    (probe)           (router, censor,        (one web server for every target domain,
                       ISP resolver,           the public resolver, the reserved
                       blockpage server,       test-helper address)
                       transparent proxy)

Modules, one concept each:

- :mod:`probe.lab.plan` — names and addresses of one run (pure data)
- :mod:`probe.lab.sites` — the lab's web sites and block pages (pure data)
- :mod:`probe.lab.scenario` — scenario TOML files: loading and validation
- :mod:`probe.lab.censor` — scenario censorship → iptables, tc and server rules (pure)
- :mod:`probe.lab.topology` — namespaces, veths, addresses, routes; teardown and leftovers
- :mod:`probe.lab.processes` — server subprocesses in namespaces, with readiness and no leaks
- :mod:`probe.lab.pki` — the lab CA and the per-site certificates (trustme)
- :mod:`probe.lab.outcome` — what a measurement shows, compared with a scenario's expectation
- :mod:`probe.lab.runner` — one scenario end to end
- :mod:`probe.lab.webserver`, :mod:`probe.lab.dnsserver`, :mod:`probe.lab.proxy` — the servers,
  each run as ``python -m probe.lab.<module> CONFIG.json`` inside a namespace
- :mod:`probe.lab.world` — a scenario's extra world endpoints (pure data): addresses, DNS
  names, service kinds and their server modules, the endpoint-list override the tests beyond
  websites get; :mod:`probe.lab.endpointserver` serves the plain kinds (tcp, http, https,
  tls, udp), and a family with a protocol of its own adds ``probe.lab.<kind>server``
- :mod:`probe.lab.nettest` — ``[[nettests]]``: running ``probe <test> --json`` from the client
  and reading its verdict

Everything here needs root, ``ip`` (iproute2), ``iptables`` and ``tc`` except the pure modules,
which the unit tests use without privileges. Nothing is ever routed outside the namespaces a
run created: they have no link to the host namespace at all.
"""

from __future__ import annotations
