"""The fleet's collector: OONI's collector protocol (``ooni/spec`` bk-003), into the store.

``probe collector serve`` takes measurements from many probes — reachprobe's, or any
OONI-compatible one — and stores them with the same schema and migrations as a probe's own
store, so ``probe flags|export|report --db postgresql://…`` read every vantage point at once.

Modules, one job each:

* :mod:`.app` — the starlette application: routes, exact statuses (its docstring is the
  protocol's reference), tokens, rates, the bounded store threads;
* :mod:`.server` — hypercorn, hardened as the helper's server is;
* :mod:`.validate` — what a stranger may submit (df-000-base keys and types, sizes, depth,
  the time window, report ids);
* :mod:`.uids` — the ``measurement_uid`` a submission is filed under (idempotency's key);
* :mod:`.summary` — the store's summary columns from a document's OONI keys;
* :mod:`.tokens`, :mod:`.ratelimit` — operator-issued tokens, token buckets;
* :mod:`.reportstore` — the store interface it needs, which
  :class:`measurements.store.reports.Reports` implements (the data side is handed in by the
  CLI: this package never imports ``measurements``).

Deployment (systemd, TLS, PostgreSQL, scaling): ``contrib/deploy/README.md``.
"""
