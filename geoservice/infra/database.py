"""Database lifecycle: which server, one engine per process, schema migrations on start.

With ``GEOSERVICE_DATABASE_URL`` set that server is used; otherwise the embedded cluster under
``GEOSERVICE_HOME`` is started (once) and used. Alembic owns the schema: ``migrate`` brings any
database to the newest revision and is what the service runs on start.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import orjson
import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from geoservice.errors import Unavailable
from geoservice.infra.embedded import EmbeddedCluster
from geoservice.settings import DatabaseSettings

MIGRATIONS = Path(__file__).parents[1] / "migrations"
# The first PostGIS call in a new backend loads the library, and the first transform between two
# CRSs builds its PROJ pipeline: together about 100 ms on the 2-core machine (measured: 26 ms,
# 20 ms to Web Mercator, 70 ms to the city's Gauss-Krüger zone). Done as the connection opens,
# that cost never lands on a request. The dataset's metric CRS is read where the loader stored it,
# once it exists (PL/pgSQL resolves the table only when it reaches the statement).
WARM_UP = """
DO $$
DECLARE
    metric integer;
BEGIN
    PERFORM ST_Transform(ST_Transform(ST_TileEnvelope(0, 0, 0), 4326), 3857);
    IF to_regclass('dataset_settings') IS NOT NULL THEN
        SELECT value::integer INTO metric FROM dataset_settings WHERE key = 'metric_epsg';
        IF metric IS NOT NULL THEN
            PERFORM ST_Transform(ST_Transform(ST_SetSRID(ST_MakePoint(120.5, 32.2), 4326), metric), 3857);
        END IF;
    END IF;
END $$
"""


def embedded_cluster(settings: DatabaseSettings) -> EmbeddedCluster:
    """The embedded cluster these settings point at (started or not)."""
    return EmbeddedCluster(settings.home, os_user=settings.embedded_os_user)


def resolve_url(settings: DatabaseSettings) -> str:
    """The URL to connect to, starting the embedded cluster when no URL is configured."""
    if settings.database_url:
        return settings.database_url
    return embedded_cluster(settings).up()


def make_engine(url: str, settings: DatabaseSettings | None = None, *, warm: bool = True) -> Engine:
    """The process's one engine; ``pool_pre_ping`` lets it survive a database restart.

    Last in, first out: a quiet server keeps reusing its few warm connections and lets the others
    idle, instead of cycling every request through all of them. ``warm=False``: new connections
    skip ``warm_up`` (~0.1 s each, measured), for a command that makes no PostGIS transforms of
    its own, such as ``geoservice route``; ``settings.warm_connections`` turns it off for the process.
    """
    settings = settings or DatabaseSettings()
    engine = create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_timeout=settings.pool_timeout_s,
        pool_pre_ping=True,
        pool_use_lifo=True,
        # PostgreSQL compiles a query with LLVM once its estimated cost is high; the planner cannot
        # know a tile's rows, and compiling added 40-60 ms to an events tile of the whole city
        # (measured) to save a few. The service's queries are short: no JIT for them.
        connect_args={"options": "-c jit=off"},
        # jsonb values (an event's properties and photos) parsed by orjson: the standard library's
        # loader was a fifth of a page of events' fetch (bench.big_events).
        json_deserializer=orjson.loads,
        future=True,
    )
    if warm and settings.warm_connections:
        event.listen(engine, "connect", warm_up)
    return engine


def warm_up(dbapi_connection: psycopg.Connection, _record: object = None) -> None:
    """Load PostGIS and the transforms tiles use into a new backend (nothing to do before PostGIS exists)."""
    try:
        dbapi_connection.execute(WARM_UP)
    except psycopg.Error:  # an empty database: migrations have not created PostGIS yet
        pass
    dbapi_connection.rollback()


def fill_pool(engine: Engine, connections: int) -> None:
    """Open (and so warm) ``connections`` pooled connections now rather than on the first requests."""
    held = [engine.connect() for _ in range(connections)]
    for connection in held:
        connection.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` inside one transaction (PostgreSQL has transactional DDL).

    A database already at the newest revision (every start but the first after an upgrade) is told
    by one query, without Alembic: importing it and reading its scripts cost every command and every
    server worker ~0.3 s and ~40 MB (measured), to learn that there is nothing to do.
    """
    if revision == "head" and at_head(engine):
        return
    from alembic import command  # deferred: only when there is something to migrate (above)
    from alembic.config import Config

    with engine.begin() as connection:
        ensure_postgis(connection)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def at_head(engine: Engine) -> bool:
    """Whether the database's Alembic revisions are exactly the migration scripts' heads."""
    heads = script_heads()
    if heads is None:
        return False
    with engine.connect() as connection:
        if connection.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
            return False  # a new database
        stamped = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return set(stamped) == heads


# A migration script's top-level ``revision: str = "0002"`` or ``down_revision ... = "0001"`` line.
REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.*?)\s*$", re.MULTILINE)


@lru_cache(maxsize=1)
def script_heads() -> frozenset[str] | None:
    """The revisions no script names as its ``down_revision``, read from the scripts' source.

    What Alembic's ``ScriptDirectory.get_heads()`` answers (tests/layers/test_schema.py keeps them
    equal), without importing Alembic or the scripts. ``None`` when a script does not state its
    revisions as plain literals, each on a line of its own: then Alembic itself decides. Only those
    lines are read: parsing the whole scripts took 15 ms of every command's start (1 ms this way).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found: dict[str, object] = {}
        for name, value in REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            try:
                found[name] = ast.literal_eval(value)
            except (ValueError, SyntaxError):  # a comment after it, or a tuple over several lines
                return None
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(d) for d in down)
        elif down is not None:
            return None
    return frozenset(revisions - parents) or None


def ensure_postgis(connection: Connection) -> None:
    """Create the PostGIS extension where this role may; otherwise say in one line what a DBA must run.

    A new database on a managed server usually lacks PostGIS, and creating it needs a superuser
    (PostGIS is not a trusted extension). The migrations cannot run without it, so this is checked
    first, before Alembic meets a missing ``geometry`` type and answers with a traceback.
    """
    if connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first():
        return
    try:
        with connection.begin_nested():
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except DBAPIError as exc:
        database = connection.execute(text("SELECT current_database()")).scalar_one()
        role = connection.execute(text("SELECT current_user")).scalar_one()
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise Unavailable(
            f"database {database!r} has no PostGIS and role {role!r} may not create it ({reason}); "
            f'a DBA must run: psql -d {database} -c "CREATE EXTENSION postgis"',
            title="PostGIS missing",
        ) from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (API handlers read them afterwards)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits as one unit, or rolls back entirely on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def open_database(settings: DatabaseSettings | None = None, *, warm: bool = True) -> Engine:
    """The engine of the configured database, migrated to the newest schema."""
    settings = settings or DatabaseSettings()
    engine = make_engine(resolve_url(settings), settings, warm=warm)
    migrate(engine)
    return engine
