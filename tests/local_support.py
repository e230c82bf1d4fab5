"""Loopback servers for integration tests: the embedded AWS as the local server sets it up, and
an ASGI app (the local gateway, the bare streaming app) under uvicorn in a thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def embedded_aws() -> Iterator[None]:
    """moto (its own process), tables, bucket, dev key and tenant; the environment as it was after."""
    from llm_gateway.local.aws import provision_and_seed, start_embedded_aws
    from tests.conftest import reset_process_state

    saved = dict(os.environ)
    moto, _ = start_embedded_aws()
    try:
        reset_process_state()
        provision_and_seed()
        yield
    finally:
        moto.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_process_state()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """`app` on a free loopback port until the block ends; yields `http://127.0.0.1:<port>`."""
    import uvicorn

    from llm_gateway.local.aws import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
