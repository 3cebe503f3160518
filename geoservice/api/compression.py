"""Compressed answers for clients that accept them: zstd, brotli or gzip, by ``starlette-compress``.

A 1,000-grid GeoJSON page is megabytes and a busy vector tile over 100 kB (docs/ogc.md has the
measured sizes); both shrink several-fold. The middleware picks zstd, then br, then gzip among the
codings the ``Accept-Encoding`` header allows (identity otherwise) and adds ``Vary:
Accept-Encoding``. What it compresses: JSON, GeoJSON, problem+json, XML (Open311), MVT, HTML,
CSV, JavaScript and CSS. What it must not touch: ``text/event-stream`` — a live stream is
written event by event and a proxy or browser waiting for a compressor's block would hold the
notifications back — so that type is taken off the package's list (it compresses SSE by default).

Cached tiles are answered in well under a millisecond; compressing a 117 kB z9 tile again for
every request would cost several (measured: docs/ogc.md). So tiles are compressed once per
content and coding (``EncodedBodies``, keyed by the tile's ETag, bounded in bytes) and sent with
their ``Content-Encoding`` set, which the middleware leaves alone.

A compressed answer is another representation of the resource, so its ETag cannot stay the
identity body's strong validator (RFC 9110 §8.8.3): it becomes weak (``W/"…"``), as nginx does.
``If-None-Match`` is compared weakly (``geoservice.api.tiles``), so a client that cached either
form still gets its 304.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict

import brotli
import zstandard
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_compress import CompressMiddleware, add_compress_type, parse_accept_encoding, remove_compress_type

# Not on the package's list, but what this service answers most of its errors and pages with.
for _media_type in ("application/problem+json", "text/csv", "application/schema+json", "application/oai.openapi+json"):
    add_compress_type(_media_type)
remove_compress_type("text/event-stream")  # SSE goes out event by event, never through a compressor


ZSTD_LEVEL, BROTLI_QUALITY, GZIP_LEVEL = 3, 4, 6
PREFERENCE = ("zstd", "br", "gzip")  # the middleware's order


def encode(body: bytes, coding: str) -> bytes:
    """``body`` in ``coding`` at the middleware's levels (gzip without a timestamp: same bytes every time)."""
    if coding == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
    if coding == "br":
        return brotli.compress(body, quality=BROTLI_QUALITY)
    return gzip.compress(body, GZIP_LEVEL, mtime=0)


class EncodedBodies:
    """Compressed copies of bodies that are answered again and again (cached tiles), by ETag and coding."""

    def __init__(self, max_bytes: int, minimum_size: int) -> None:
        self.max_bytes, self.minimum_size = max_bytes, minimum_size
        self._kept: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def choose(self, body: bytes, accept_encoding: str | None) -> str | None:
        """The coding to send ``body`` in (None: as it is), as the middleware would choose."""
        if not accept_encoding or len(body) < self.minimum_size:
            return None
        accepted = parse_accept_encoding(accept_encoding)
        return next((coding for coding in PREFERENCE if coding in accepted), None)

    def __contains__(self, key: tuple[str, str]) -> bool:
        """Whether ``(etag, coding)`` is kept compressed."""
        return key in self._kept

    def get(self, etag: str, body: bytes, coding: str) -> bytes:
        """``body`` compressed in ``coding``, compressed at most once while it is kept."""
        key = (etag, coding)
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        encoded = encode(body, coding)
        with self._lock:
            if key not in self._kept and len(encoded) <= self.max_bytes:
                self._kept[key] = encoded
                self._bytes += len(encoded)
                while self._bytes > self.max_bytes:
                    _, dropped = self._kept.popitem(last=False)
                    self._bytes -= len(dropped)
        return encoded


class Compression:
    """The compressor, with the ETag of what it compressed marked weak (one middleware for the app)."""

    def __init__(self, app: ASGIApp, minimum_size: int = 500) -> None:
        # Levels chosen for speed: a cached tile is answered in well under a millisecond otherwise.
        self.app = CompressMiddleware(app, minimum_size=minimum_size, zstd_level=ZSTD_LEVEL,
                                      brotli_quality=BROTLI_QUALITY, gzip_level=GZIP_LEVEL)  # fmt: skip

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
