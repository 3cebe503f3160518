"""The FastAPI application: assembles routers; the engine lives in the lifespan, one per process."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from geoservice.api import (
    auth,
    boundary_versions,
    city_packs,
    coverage,
    forces,
    health,
    locate,
    metrics,
    open311,
    route,
    stats,
    users,
)
from geoservice.api import duties as duties_api
from geoservice.api import event_tasks as event_tasks_api
from geoservice.api import events as events_api
from geoservice.api import features as features_api
from geoservice.api import follow as follow_api
from geoservice.api import key_people as key_people_api
from geoservice.api import map_names as map_names_api
from geoservice.api import mobile as mobile_api
from geoservice.api import notifications as notifications_api
from geoservice.api import onemap as onemap_api
from geoservice.api import patrols as patrols_api
from geoservice.api import photos as photos_api
from geoservice.api import place_codes as place_codes_api
from geoservice.api import queue as queue_api
from geoservice.api import reference as reference_api
from geoservice.api import supervision as supervision_api
from geoservice.api import tiles as tiles_api
from geoservice.api.compression import Compression, EncodedBodies
from geoservice.api.cors import cors_options
from geoservice.api.limits import BodySizeLimit, PublicRateLimiter
from geoservice.api.locate_hits import LocateHits
from geoservice.api.openapi import install_openapi
from geoservice.api.problems import register_error_handlers
from geoservice.api.query_params import refuse_unknown_query
from geoservice.api.report_hits import ReportHits
from geoservice.api.shared_rate import SharedRateLimiter
from geoservice.api.tile_hits import TileHits
from geoservice.auth.principals import PrincipalCache
from geoservice.boundaries.reroute import reroute_window
from geoservice.boundaries.settings import BoundarySettings
from geoservice.field.settings import PatrolSettings, PlaceCodeSettings
from geoservice.forces.settings import ForceSettings
from geoservice.infra.database import fill_pool, open_database, session_factory
from geoservice.infra.observability import Metrics, ObservabilityMiddleware
from geoservice.media.settings import MediaSettings
from geoservice.media.store import open_store
from geoservice.notifications.settings import NotifySettings
from geoservice.open311.settings import Open311Settings
from geoservice.routing.registry import RouterRegistry
from geoservice.settings import AuthSettings, DatabaseSettings, EventSettings, OperationsSettings, RoutingSettings
from tiles.settings import TileSettings
from webmap.assets import STATIC
from webmap.settings import MapSettings


def create_app(
    settings: DatabaseSettings | None = None,
    engine: Engine | None = None,
    routing: RoutingSettings | None = None,
    auth_settings: AuthSettings | None = None,
    operations: OperationsSettings | None = None,
    event_settings: EventSettings | None = None,
    force_settings: ForceSettings | None = None,
    tile_settings: TileSettings | None = None,
    map_settings: MapSettings | None = None,
    boundary_settings: BoundarySettings | None = None,
    media_settings: MediaSettings | None = None,
    patrol_settings: PatrolSettings | None = None,
) -> FastAPI:
    """Build the app; tests pass their own engine, the server lets the lifespan open the database.

    Every setting is read from the environment here, once per process, unless a test passes its own;
    handlers and services take them from ``app.state``, never from the environment.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        # Sync handlers run in anyio's thread pool (40 threads by default). On a small machine
        # 40 threads fighting over the GIL and the database answer fewer reports than 8 do.
        anyio.to_thread.current_default_thread_limiter().total_tokens = operations.worker_threads
        app.state.engine = engine or open_database(settings)
        if own_engine:
            fill_pool(app.state.engine, min(operations.worker_threads, app.state.engine.pool.size()))
        app.state.sessions = session_factory(app.state.engine)
        if operations.rate_limit_shared:  # the buckets need the database, so they are made here
            app.state.public_rate = SharedRateLimiter(operations.public_rate, app.state.engine)
        app.state.principals = PrincipalCache(app.state.engine, app.state.auth_settings.principal_cache_s)
        app.state.principals.start()
        app.state.routers = RouterRegistry(
            app.state.engine, app.state.routing_settings, on_swap=partial(reroute_window, app.state.engine)
        )
        app.state.routers.start()
        if own_engine:
            # FastAPI builds each included router's routes on the first request that reaches it:
            # 50-250 ms that one early user would wait (measured). Generating the OpenAPI
            # document builds them all now, and keeps the document ready for /openapi.json.
            app.openapi()
            tiles_api.prepare_tiles(app)
            # What start-up built (router, prepared geometries, events in memory) lives as long as
            # the process; frozen, a full garbage collection no longer walks it: 60-90 ms
            # pauses in the middle of requests otherwise (measured with gc.callbacks).
            gc.collect()
            gc.freeze()
        yield
        await app.state.routers.stop()
        await app.state.principals.stop()
        tile_service = getattr(app.state, "tile_service", None)
        if tile_service is not None:  # its connections are its own, not the engine's pool
            tile_service.close()
        if own_engine:
            app.state.engine.dispose()

    app = FastAPI(
        title="geoservice",
        summary="Spatial governance service: grids, police posts, events and routing on PostGIS.",
        version="0.1.0",
        lifespan=lifespan,
        # Every route refuses query parameters it does not declare (geoservice.api.query_params).
        dependencies=[Depends(refuse_unknown_query)],
        # FastAPI's native OpenTelemetry asked OpenTelemetry's global providers on every request
        # whether anyone listens (~10 µs each, issue 22); the service's metrics are Prometheus'
        # (/metrics, geoservice.infra.observability) and it configures no OpenTelemetry.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    register_error_handlers(app, dialects={open311.PREFIX + "/": open311.open311_dialect})
    install_openapi(app)
    operations = operations or OperationsSettings()
    app.state.routing_settings = routing or RoutingSettings()
    app.state.auth_settings = auth_settings or AuthSettings()
    app.state.event_settings = event_settings or EventSettings()
    app.state.force_settings = force_settings or ForceSettings()
    app.state.tile_settings = tile_settings or TileSettings()
    app.state.map_settings = map_settings or MapSettings()
    app.state.boundary_settings = boundary_settings or BoundarySettings()
    app.state.media_settings = media_settings or MediaSettings()
    app.state.media_store = open_store(app.state.media_settings)  # a test may replace it before the lifespan
    app.state.patrol_settings = patrol_settings or PatrolSettings()
    app.state.place_code_settings = PlaceCodeSettings()  # a test may replace it
    app.state.notify_settings = NotifySettings()  # a test may replace it before the lifespan starts
    app.state.open311_settings = Open311Settings()  # a test may replace it too
    app.state.metrics = Metrics(app.state)
    app.state.operations = operations
    app.state.public_rate = PublicRateLimiter(operations.public_rate)
    # Compressed copies of cached tiles, a tenth of the tile cache's size (tiles shrink 2-3×).
    app.state.encoded_tiles = EncodedBodies(
        max(1, int(app.state.tile_settings.cache_mb * 1024 * 1024 / 10)), operations.compress_min_bytes
    )
    app.add_middleware(TileHits)  # cached tiles without the framework's ~0.3 ms
    app.add_middleware(LocateHits)  # the plain locate too
    app.add_middleware(ReportHits)  # and the plain report
    app.add_middleware(BodySizeLimit, max_bytes=operations.max_body_bytes)
    # Outside the tile fast path, so cached tiles are compressed too; SSE is left alone (api.compression).
    app.add_middleware(Compression, minimum_size=operations.compress_min_bytes)
    if operations.cors_origins:  # preflights answered before anything else reads the request
        app.add_middleware(CORSMiddleware, **cors_options(operations.cors_origins))
    app.add_middleware(ObservabilityMiddleware)  # outermost: refused bodies are logged and counted too
    app.include_router(metrics.router)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(boundary_versions.router)
    app.include_router(locate.router)
    app.include_router(route.router)
    app.include_router(reference_api.router)
    app.include_router(city_packs.router)
    app.include_router(coverage.router)
    app.include_router(events_api.router)
    app.include_router(notifications_api.router)
    app.include_router(event_tasks_api.router)
    app.include_router(photos_api.router)
    app.include_router(patrols_api.router)
    app.include_router(duties_api.router)
    app.include_router(key_people_api.router)
    app.include_router(place_codes_api.router)
    app.include_router(mobile_api.router)
    app.include_router(supervision_api.router)
    app.include_router(queue_api.router)
    app.include_router(follow_api.router)
    app.include_router(stats.router)
    app.include_router(forces.router)
    app.include_router(open311.router)
    app.include_router(tiles_api.router)
    app.include_router(features_api.router)
    app.include_router(onemap_api.router)
    app.include_router(map_names_api.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")  # Leaflet & co. for the one-map: no CDN
    return app
