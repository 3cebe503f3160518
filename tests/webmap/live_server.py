"""The real app under uvicorn on a free loopback port, in a thread: for clients that speak HTTP themselves."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A test's requests.Session keeps its connection between steps, and a browser step can take longer
    # than uvicorn's 5 s keep-alive: the server then closed the connection as the next POST went out on
    # it ("Connection reset by peer", once). Held open for the whole test, it is never closed under a
    # request; the server still closes it when the block ends.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_keep_alive=600)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    while not ready.wait(0.05):
        if server.started:
            ready.set()
        elif not thread.is_alive():
            raise RuntimeError("uvicorn stopped before it started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
