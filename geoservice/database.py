"""Database lifecycle: which server, one engine per process, schema migrations on start.

With ``GEOSERVICE_DATABASE_URL`` set that server is used; otherwise the embedded cluster under
``GEOSERVICE_HOME`` is started (once) and used. Alembic owns the schema: ``migrate`` brings any
database to the newest revision and is what the service runs on start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from geoservice.embedded import EmbeddedCluster
from geoservice.settings import DatabaseSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def embedded_cluster(settings: DatabaseSettings) -> EmbeddedCluster:
    """The embedded cluster these settings point at (started or not)."""
    return EmbeddedCluster(settings.home, os_user=settings.embedded_os_user)


def resolve_url(settings: DatabaseSettings) -> str:
    """The URL to connect to, starting the embedded cluster when no URL is configured."""
    if settings.database_url:
        return settings.database_url
    return embedded_cluster(settings).up()


def make_engine(url: str, settings: DatabaseSettings | None = None) -> Engine:
    """The process's one engine; ``pool_pre_ping`` lets it survive a database restart."""
    settings = settings or DatabaseSettings()
    return create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_timeout=settings.pool_timeout_s,
        pool_pre_ping=True,
        future=True,
    )


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` inside one transaction (PostgreSQL has transactional DDL)."""
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (API handlers read them afterwards)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits as one unit, or rolls back entirely on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def open_database(settings: DatabaseSettings | None = None) -> Engine:
    """The engine of the configured database, migrated to the newest schema."""
    settings = settings or DatabaseSettings()
    engine = make_engine(resolve_url(settings), settings)
    migrate(engine)
    return engine
