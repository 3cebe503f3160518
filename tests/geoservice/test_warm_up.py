"""A new connection is warmed before a request uses it: PostGIS loaded, its transforms built.

The rest of the suite runs with the warm-up off (tests/conftest.py), so these tests are what keep
the service's default honest: a warm engine's connections have PostGIS's PROJ context and a cold
one's do not, and the warm-up's statement runs without error where it has transforms to build.
"""

import psycopg
from sqlalchemy import Connection, Engine, text

from geoservice.infra.database import WARM_UP, make_engine, warm_up
from geoservice.settings import DatabaseSettings
from tests.geoservice.events_city import load_events_city


def proj_loaded(conn: Connection) -> bool:
    """Whether this backend has made a PostGIS transform (PostGIS keeps PROJ in a context of its own)."""
    query = text("SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'Proj Context'")
    return conn.execute(query).scalar_one() > 0


def test_a_warm_engine_builds_the_transforms_in_every_new_connection(empty_db: Engine, empty_url: str):
    load_events_city(empty_db)
    warm = make_engine(empty_url, DatabaseSettings(warm_connections=True))
    cold = make_engine(empty_url, DatabaseSettings(warm_connections=False))
    try:
        with warm.connect() as first, warm.connect() as second:
            assert proj_loaded(first) and proj_loaded(second)
        with cold.connect() as conn:
            assert not proj_loaded(conn)
    finally:
        warm.dispose()
        cold.dispose()


def test_the_warm_up_statement_runs_cleanly_on_a_city(empty_db: Engine, empty_url: str):
    # warm_up forgives errors (a database before its migrations has no PostGIS); the statement
    # itself, run bare on a city with a metric CRS, must not raise.
    load_events_city(empty_db)
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT value FROM dataset_settings WHERE key = 'metric_epsg'")).scalar_one()
    conninfo = empty_db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as raw:
        raw.execute(WARM_UP)
        warm_up(raw)  # and again through the listener's function, leaving the connection usable
        assert raw.execute("SELECT 1").fetchone() == (1,)
