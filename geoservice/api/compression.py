"""Compressed answers for clients that accept them: zstd, brotli or gzip, by ``starlette-compress``.

A 1,000-grid GeoJSON page is megabytes and a busy vector tile over 100 kB (docs/ogc.md has the
measured sizes); both shrink several-fold. The middleware picks zstd, then br, then gzip among the
codings the ``Accept-Encoding`` header allows (identity otherwise) and adds ``Vary:
Accept-Encoding``. What it compresses: JSON, GeoJSON, problem+json, XML (Open311), MVT, HTML,
CSV, JavaScript and CSS. What it must not touch: ``text/event-stream`` — a live stream is
written event by event and a proxy or browser waiting for a compressor's block would hold the
notifications back — so that type is taken off the package's list (it compresses SSE by default).

A compressed answer is another representation of the resource, so its ETag cannot stay the
identity body's strong validator (RFC 9110 §8.8.3): it becomes weak (``W/"…"``), as nginx does.
``If-None-Match`` is compared weakly (``geoservice.api.tiles``), so a client that cached either
form still gets its 304.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_compress import CompressMiddleware, add_compress_type, remove_compress_type

# Not on the package's list, but what this service answers most of its errors and pages with.
for _media_type in ("application/problem+json", "text/csv", "application/schema+json", "application/oai.openapi+json"):
    add_compress_type(_media_type)
remove_compress_type("text/event-stream")  # SSE goes out event by event, never through a compressor


class Compression:
    """The compressor, with the ETag of what it compressed marked weak (one middleware for the app)."""

    def __init__(self, app: ASGIApp, minimum_size: int = 500) -> None:
        # Levels chosen for speed: a cached tile is answered in well under a millisecond otherwise.
        self.app = CompressMiddleware(app, minimum_size=minimum_size, zstd_level=3, brotli_quality=4, gzip_level=6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_weakened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=message["headers"])
                etag = headers.get("etag")
                encoded = headers.get("content-encoding", "identity").strip().lower() != "identity"
                if etag and encoded and not etag.startswith("W/"):
                    headers["ETag"] = f"W/{etag}"
            await send(message)

        await self.app(scope, receive, send_weakened)
