"""Benchmark a round: 100 loopback targets, half of them never answering, at several concurrencies.

Usage (from the repository root)::

    python bench/round.py                 # 2 s step timeouts; concurrency 1 extrapolated
    python bench/round.py --full-c1       # also run the whole round at concurrency 1 (minutes)
    python bench/round.py --n 2300 --silent-share 0.2   # the size of the global + Pakistan lists

Targets are ``http://127.0.0.1:PORT/?n=i`` URLs (IP literals: no DNS): 50 on a loopback HTTP
server that answers, 50 on a TCP server that accepts and then never says a word, so each of
those costs its full ``http_timeout``. Every round is a real :func:`probe.rounds.service.run_round`
into a throw-away SQLite store, as the daemon runs it.

Printed, all measured in the same run:

- the baseline: one never-answering target measured alone (what "one timeout" really costs),
  and the configured budget of such a target (``tcp_timeout + http_timeout``);
- the round at the default bounds (16 active measurements; one with nothing from the network
  for twice the round's learned answer time, between 0.1 s and ``stall_after`` = 0.5 s, gives
  its slot up, up to ``max_open`` = 256 in progress), the same with a *strict* bound of 16
  (``max_open = concurrency``: what the round did before slots were given up), and at
  concurrency 100; their ratios to the baseline and to the budget (``--only-default``: the
  baseline and the default round alone; ``--no-control``: no rounds with a control);
- the round at (strict) concurrency 1: by default *extrapolated* from a 10-target subset with
  the same share of silent targets (5 + 5 by default), times n / 10, which the output says;
  ``--full-c1`` measures it instead;
- rounds with a control (issue 10): our helper on loopback, measuring with the same step
  timeouts, and the same round without a control as the baseline, for ``--control-n`` targets
  (200) of which ``--control-silent`` (40) never answer, then with all answering; each with
  its count of measurements at a ``control_failure`` (0 expected). ``--control-only`` runs
  these alone.

A round's memory against the length of its list is ``bench/round_memory.py``'s.

Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback servers live in tests/

from measurements.store.installation import Installation
from measurements.store.store import open_store
from probe import control
from probe.helper.app import HelperSettings, Limits
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.rounds import runner, service
from probe.rounds.settings import Control, Measure, Network, Settings, Targets, Tests
from tests.servers.helper_server import running_helper
from tests.servers.http_server import http_server
from tests.servers.tcp_server import tcp_server

LOOPBACK = ("127.0.0.0/8",)


def write_list(directory: Path, name: str, urls: list[str]) -> Path:
    path = directory / name
    rows = "".join(f"{u},NEWS,News Media,2024-01-01,bench,\n" for u in urls)
    path.write_text(
        "url,category_code,category_description,date_added,source,notes\n" + rows, encoding="utf-8"
    )
    return path


def timed_round(
    target_list: Path,
    db: Path,
    *,
    concurrency: int,
    timeout: float,
    strict: bool = False,
    control_url: str | None = None,
) -> tuple[float, int, int]:
    """Wall time of one stored round of *target_list*, how many targets it measured, and how
    many of those have a ``control_failure`` (``control_not_configured`` aside).

    The other bounds are the defaults (``max_open``, ``stall_after``), or with *strict*
    ``max_open = concurrency``: no measurement gives its slot up. With *control_url*, the
    round asks that helper (loopback counted as public).
    """
    settings = Settings(
        measure=Measure(
            concurrency=concurrency,
            max_open=concurrency if strict else None,
            dns_timeout=timeout,
            tcp_timeout=timeout,
            tls_timeout=timeout,
            http_timeout=timeout,
            resolvers=(),
            use_system_resolver=True,
            allow_loopback=True,
        ),
        targets=Targets(lists=(str(target_list),)),
        tests=Tests.web_only(),  # the families would reach the real services
        control=Control(url=control_url),
        network=Network(public_networks=LOOPBACK if control_url else ()),
    )
    plan = service.plan_round(settings)
    missing: list[str] = []
    lost = 0

    def count(result: runner.Result) -> None:  # the round keeps no result: count as they end
        nonlocal lost
        if result.measurement is None:
            missing.append(f"{result.target.url}: {result.error}")
        elif result.measurement.test_keys.control_failure not in (None, control.CONTROL_NOT_CONFIGURED):
            lost += 1

    # The installation (id, round locks) beside the throw-away database, not in the user's data dir.
    with open_store(f"sqlite:///{db}", installation=Installation.load(db.parent)) as store:
        t0 = time.perf_counter()
        report = asyncio.run(service.run_round(plan, store, on_result=count))
        wall = time.perf_counter() - t0
    assert not missing, f"targets without a measurement: {missing[:3]}"
    return wall, report.n_targets, lost


def control_rounds(tmp: Path, web: int, hole: int, *, n: int, silent: int, timeout: float) -> None:
    """Rounds with a loopback helper against the same rounds without one (the baseline)."""
    helper_settings = HelperSettings(
        config=HelperConfig(
            dns_timeout=timeout, tcp_timeout=timeout, tls_timeout=timeout, http_timeout=timeout
        ),
        policy=AddressPolicy.allowing(LOOPBACK),
        limits=Limits(),  # max_concurrency 32, as the probe's control.max_in_flight
    )
    db = tmp / "control.sqlite3"
    good = [f"http://127.0.0.1:{web}/?c={i}" for i in range(n)]
    bad = [f"http://127.0.0.1:{hole}/?c={i}" for i in range(silent)]
    mixed = [u for pair in zip(good, bad, strict=False) for u in pair] + good[len(bad) : n - silent]
    rounds = (
        (f"{silent} never answer", write_list(tmp, "control-mixed.csv", mixed)),
        ("all answer", write_list(tmp, "control-good.csv", good)),
    )
    steps = {f"{step}_timeout": timeout for step in ("dns", "tcp", "tls", "http")}
    print(
        f"\nrounds with a control: {n} loopback targets, our helper on loopback with the same "
        f"{timeout:g} s step timeouts (the probe waits {control.answer_wait(**steps):g} s)"
    )
    with running_helper(helper_settings) as helper:
        for label, path in rounds:
            base, _, _ = timed_round(path, db, concurrency=16, timeout=timeout)
            wall, k, lost = timed_round(path, db, concurrency=16, timeout=timeout, control_url=helper)
            print(
                f"{label:<17}: without a control {base:6.2f} s (baseline), with one {wall:6.2f} s"
                f" = {wall / base:4.2f}x; {lost} of {k} measurements at a control_failure"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="targets in the round")
    parser.add_argument(
        "--silent-share", type=float, default=0.5, help="share of targets that never answer (default 0.5)"
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per step (all steps)")
    parser.add_argument(
        "--full-c1", action="store_true", help="measure concurrency 1 instead of extrapolating"
    )
    parser.add_argument("--control-n", type=int, default=200, help="targets in the rounds with a control")
    parser.add_argument(
        "--control-silent", type=int, default=40, help="never-answering targets in the rounds with a control"
    )
    parser.add_argument("--control-only", action="store_true", help="run only the rounds with a control")
    parser.add_argument("--no-control", action="store_true", help="skip the rounds with a control")
    parser.add_argument(
        "--only-default", action="store_true", help="only the baseline and the round at the default bounds"
    )
    args = parser.parse_args()
    logging.disable(logging.INFO)  # httpx logs every request
    half = round(args.n * args.silent_share)  # the never-answering targets

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reachprobe-bench-")))
        web = stack.enter_context(http_server())
        hole = stack.enter_context(tcp_server("accept"))
        good = [f"http://127.0.0.1:{web.port}/?n={i}" for i in range(args.n - half)]
        silent = [f"http://127.0.0.1:{hole}/?n={i}" for i in range(half)]
        mixed = [u for pair in zip(good, silent, strict=False) for u in pair] + good[len(silent) :]
        full = write_list(tmp, "round.csv", mixed)
        one = write_list(tmp, "one.csv", silent[:1])
        n_silent = round(10 * args.silent_share)  # the subset has the round's share of silent targets
        subset = write_list(tmp, "subset.csv", silent[:n_silent] + good[: 10 - n_silent])
        db = tmp / "bench.sqlite3"
        if args.control_only:
            control_rounds(
                tmp, web.port, hole, n=args.control_n, silent=args.control_silent, timeout=args.timeout
            )
            return

        budget = 2 * args.timeout  # tcp_timeout + http_timeout: an http:// IP-literal URL has no DNS or TLS
        print(
            f"round: {args.n} loopback targets, {half} accept and never answer; "
            f"every step timeout {args.timeout:g} s"
        )
        print(f"configured budget of one never-answering target (tcp + http timeout): {budget:.2f} s")
        base, _, _ = timed_round(one, db, concurrency=1, timeout=args.timeout, strict=True)
        print(f"baseline  one never-answering target alone:          {base:7.2f} s")

        results: dict[str, float] = {}
        bounds = [("16 (default)", 16, False), ("16 strict", 16, True), ("100", 100, False)]
        for label, concurrency, strict in bounds[:1] if args.only_default else bounds:
            wall, n, _ = timed_round(full, db, concurrency=concurrency, timeout=args.timeout, strict=strict)
            results[label] = wall
            print(
                f"round     concurrency {label:<12}: {n} targets in {wall:7.2f} s"
                f"   = {wall / base:5.2f}x the baseline, {wall / budget:5.2f}x the budget"
                f"   ({n / wall:6.1f} targets/s)"
            )

        if args.only_default:
            return
        if args.full_c1:
            c1, _, _ = timed_round(full, db, concurrency=1, timeout=args.timeout, strict=True)
            how = "measured"
        else:
            sub, k, _ = timed_round(subset, db, concurrency=1, timeout=args.timeout, strict=True)
            c1 = sub * args.n / k
            how = f"EXTRAPOLATED: {k}-target subset (same mix) took {sub:.2f} s, x{args.n / k:g}"
        print(f"round     concurrency {'1 strict':<12}: {args.n} targets in {c1:7.2f} s   ({how})")
        for label, wall in results.items():
            print(f"speed-up  concurrency {label:<12} vs 1: {c1 / wall:6.1f}x")
        if args.no_control:
            return
        control_rounds(
            tmp, web.port, hole, n=args.control_n, silent=args.control_silent, timeout=args.timeout
        )


if __name__ == "__main__":
    main()
