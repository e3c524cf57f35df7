"""The measurement steps: one module per step (DNS, TCP, TLS, HTTP), the failure vocabulary,
URLs and endpoints, the bounded body reader and the clock they share.

Two optional features of the libraries the steps use are switched off here, before the steps
import them, because no step uses them and each costs a daemon memory for its whole life
(issue 12: a Raspberry Pi's 1 GB): dnspython's DNS over QUIC, which imports aioquic and
cryptography whenever they are installed (~12 MB; the probe asks over UDP and HTTPS only,
and its HTTP/3 test uses aioquic directly, not through dnspython), and httpx's command line,
which imports click, rich and pygments whenever they are installed (~4 MB; ``httpx.main``
then tells to install ``httpx[cli]``).
"""

from __future__ import annotations

import sys as _sys

# Bound under other names: "dns" here would hide the probe.steps.dns module.
from dns import _features as _dnspython_features

_dnspython_features.force("doq", False)
_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None in sys.modules: "not importable", by design of the import system
