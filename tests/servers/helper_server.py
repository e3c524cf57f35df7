"""Our test helper (hypercorn + the starlette app) on 127.0.0.1, port 0, in a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

from probe.helper.app import HelperSettings
from probe.helper.server import bind, make_server


@contextlib.contextmanager
def running_helper(settings: HelperSettings) -> Iterator[str]:
    """Serve the helper for *settings*; yield its base URL (``http://127.0.0.1:PORT/``).

    The server is stopped and its thread joined on exit.
    """
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = make_server(settings)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the helper did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
