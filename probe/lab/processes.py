"""Lab servers as subprocesses inside namespaces: started together, ready or failed, never leaked.

Each server runs as ``ip netns exec NS <python> -m probe.lab.<module> CONFIG.json`` (``ip``
execs the interpreter, so the child's pid *is* the server's). It prints ``ready`` once its
sockets are bound; :func:`start_all` waits for every server at once and, if one fails or stays
silent, stops them all and raises with the failing server's stderr. The servers exit when their
stdin closes (:mod:`probe.lab.serving`), so even a killed parent leaves none behind; the
topology's teardown also kills anything left in its namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import probe
from probe.lab.serving import READY
from probe.lab.topology import LabError


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One server to start: a name for messages, its namespace, module and config."""

    name: str
    namespace: str
    module: str
    config: dict[str, Any]


@dataclass(slots=True)
class Server:
    """A started server process."""

    spec: ServerSpec
    proc: subprocess.Popen[bytes]
    stderr_path: Path


def child_env() -> dict[str, str]:
    """The environment for lab children: this ``probe`` package importable even uninstalled."""
    root = str(Path(probe.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_all(specs: list[ServerSpec], workdir: Path, *, timeout: float = 10.0) -> list[Server]:
    """Start every server and wait until all print ``ready``.

    Raises:
        LabError: a server exited or did not get ready within *timeout* (all are stopped).
    """
    servers: list[Server] = []
    try:
        for spec in specs:
            config_path = workdir / f"{spec.name}.json"
            config_path.write_text(json.dumps(spec.config, indent=1), encoding="utf-8")
            stderr_path = workdir / f"{spec.name}.stderr"
            with stderr_path.open("wb") as stderr:
                proc = subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        spec.namespace,
                        sys.executable,
                        "-m",
                        spec.module,
                        str(config_path),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    env=child_env(),
                )
            servers.append(Server(spec, proc, stderr_path))
        _await_ready(servers, timeout)
    except BaseException:
        stop_all(servers)
        raise
    return servers


def _await_ready(servers: list[Server], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting: dict[int, Server] = {}
    with selectors.DefaultSelector() as selector:
        for server in servers:
            assert server.proc.stdout is not None
            selector.register(server.proc.stdout, selectors.EVENT_READ)
            waiting[server.proc.stdout.fileno()] = server
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(server.spec.name for server in waiting.values())
                raise LabError(f"lab servers not ready after {timeout:.0f} s: {names}")
            for key, _ in selector.select(left):
                server = waiting.pop(key.fd)
                selector.unregister(key.fileobj)
                line = server.proc.stdout.readline() if server.proc.stdout else b""
                if line.strip() != READY.encode():
                    server.proc.wait(timeout=5)
                    detail = " ".join(server.stderr_path.read_text(errors="replace").split()[-40:])
                    raise LabError(f"lab server {server.spec.name} failed to start: {detail}")


def stop_all(servers: list[Server], *, grace: float = 1.0) -> None:
    """Stop the servers: close their stdin (they exit), then SIGTERM, then SIGKILL."""
    for server in servers:
        if server.proc.stdin is not None:
            with contextlib.suppress(OSError):
                server.proc.stdin.close()
        if server.proc.poll() is None:
            server.proc.terminate()
    deadline = time.monotonic() + grace
    for server in servers:
        try:
            server.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
        if server.proc.stdout is not None:
            server.proc.stdout.close()
