"""Cross-origin use from browsers (CORS): a web map on another origin may read tiles and the API.

Off unless ``GEOSERVICE_CORS_ORIGINS`` names origins: the service holds personal data and signed-in
staff's tokens, and an origin that may read answers must be one the city chose. Preflights
(``OPTIONS`` with ``Access-Control-Request-Method``) are answered by Starlette's ``CORSMiddleware``
for those origins; requests carry the bearer token in ``Authorization``, never cookies, so
credentials mode is not needed. Response headers a map client reads (``ETag`` for revalidation,
``Content-Crs`` of OGC features, ``Retry-After``, ``Link`` paging, the request id) are exposed.
"""

from __future__ import annotations

from typing import Any

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Accept", "Accept-Language", "If-None-Match",
                   "Idempotency-Key", "X-Request-ID")  # fmt: skip
EXPOSED_HEADERS = ("ETag", "Content-Crs", "Retry-After", "Link", "Location", "X-Request-ID", "X-Tile-Cache")
PREFLIGHT_MAX_AGE_S = 600


def cors_options(origins: list[str]) -> dict[str, Any]:
    """``CORSMiddleware``'s arguments for the configured origins."""
    return {
        "allow_origins": list(origins),
        "allow_methods": list(ALLOWED_METHODS),
        "allow_headers": list(ALLOWED_HEADERS),
        "expose_headers": list(EXPOSED_HEADERS),
        "allow_credentials": False,
        "max_age": PREFLIGHT_MAX_AGE_S,
    }
