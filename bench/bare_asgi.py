"""The HTTP floor: an ASGI app that answers every request with the same bytes and does nothing else.

Under the same uvicorn and the same client as geoservice, it shows what a request costs before
any application code runs, so the cached-tile rows can be read against what this machine allows.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

BODY = bytes(16 * 1024)  # about the size of a cached grid tile at z12-z16
HEADERS = [(b"content-type", b"application/vnd.mapbox-vector-tile"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


# The floor for JSON answers (bench.http): about the size of one locate answer, as application/json.
JSON_BODY = b'{"floor":"' + b"x" * 690 + b'"}'
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(JSON_BODY)).encode())]


async def json_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": JSON_BODY})
