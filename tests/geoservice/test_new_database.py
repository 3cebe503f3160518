"""A new database just works: PostGIS is created where the role may, and otherwise one line says what a DBA runs.

And every command error is one line on stderr without a traceback unless ``--debug`` is given.
"""

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from geoservice.cli import app
from geoservice.errors import Unavailable
from geoservice.infra.database import make_engine, migrate
from geoservice.infra.embedded import EmbeddedCluster

runner = CliRunner()


@pytest.fixture
def bare_database(cluster: EmbeddedCluster) -> Iterator[str]:
    """A database made from template0: no PostGIS, no tables, as a DBA hands one over."""
    name = f"bare_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_migrate_creates_postgis_where_the_role_may(cluster: EmbeddedCluster, bare_database: str):
    engine = make_engine(cluster.url(bare_database))
    try:
        migrate(engine)
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT extname FROM pg_extension WHERE extname = 'postgis'")).scalar() == "postgis"
            )
            assert conn.execute(text("SELECT count(*) FROM grids")).scalar() == 0
    finally:
        engine.dispose()


def test_without_the_right_to_create_postgis_one_line_names_the_dba_command(
    cluster: EmbeddedCluster, bare_database: str, monkeypatch: pytest.MonkeyPatch
):
    role, password = f"owner_{uuid.uuid4().hex[:8]}", "owner-password-1"
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(bare_database), sql.Identifier(role))
        )
    url = make_url(cluster.url(bare_database)).set(username=role, password=password)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(Unavailable) as caught:
            migrate(engine)
    finally:
        engine.dispose()
    message = str(caught.value)
    assert f"database {bare_database!r} has no PostGIS and role {role!r} may not create it" in message
    assert f'a DBA must run: psql -d {bare_database} -c "CREATE EXTENSION postgis"' in message
    # The command line says the same in one line, exit status 1, no traceback.
    monkeypatch.setenv("GEOSERVICE_DATABASE_URL", url.render_as_string(hide_password=False))
    result = runner.invoke(app, ["export", "grids", "/tmp/never-written.geojson"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database") and "CREATE EXTENSION postgis" in lines[0]
    assert "Traceback" not in result.output
    # With --debug the traceback is shown (the exception propagates).
    debug = runner.invoke(app, ["--debug", "export", "grids", "/tmp/never-written.geojson"])
    assert debug.exit_code == 1 and isinstance(debug.exception, Unavailable)
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(bare_database)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
