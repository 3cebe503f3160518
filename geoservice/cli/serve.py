"""``geoservice serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from geoservice.infra.database import open_database
from geoservice.infra.observability import logging_config
from geoservice.settings import OperationsSettings, ServerSettings


def serve(
    host: Annotated[str | None, typer.Option(help="default GEOSERVICE_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default GEOSERVICE_PORT or 8000")] = None,
    workers: int = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    settings = ServerSettings()
    if workers > 1 and OperationsSettings().rate_limit_shared is None:
        # Several workers share one public budget, not one each; the workers read it from the environment.
        os.environ["GEOSERVICE_RATE_LIMIT_SHARED"] = "true"
    open_database().dispose()  # start the cluster and migrate once, before the workers fork
    uvicorn.run(
        "geoservice.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=logging_config(OperationsSettings().log_format),
        access_log=False,
    )
