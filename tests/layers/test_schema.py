"""The schema on a real PostGIS: migrations, indexes, constraints the data relies on."""

import shutil

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from geoservice.infra.database import MIGRATIONS, at_head, migrate, script_heads
from layers import forces as forces  # (its tables on Base.metadata, as Alembic sees them)
from layers.models import Base

MULTIPOLYGON = "SRID=4326;MULTIPOLYGON(((120 32, 120.01 32, 120.01 32.01, 120 32.01, 120 32)))"


def _alembic(engine: Engine, fn, *args) -> None:
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        fn(config, *args)


def test_models_and_migrations_agree(empty_db: Engine):
    _alembic(empty_db, command.check)  # raises if autogenerate would produce any operation


def test_downgrade_and_upgrade_again(empty_db: Engine):
    _alembic(empty_db, command.downgrade, "base")
    assert "grids" not in inspect(empty_db).get_table_names()
    migrate(empty_db)
    assert set(Base.metadata.tables) <= set(inspect(empty_db).get_table_names())


def test_heads_read_from_the_scripts_are_alembics():
    assert script_heads() == frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


BRANCH = 'revision: str = "9001"\ndown_revision: str | None = "{parent}"\n'  # beside the newest: two heads
MERGE = 'revision: str = "9002"\ndown_revision = ("{newest}", "9001")\n'
COMMENTED = 'revision: str = "9003"  # a note\ndown_revision: str | None = "{newest}"  # another\n'
MERGE_OVER_LINES = 'revision: str = "9004"\ndown_revision = (\n    "{newest}",\n    "9001",\n)\n'


@pytest.mark.parametrize(
    ("added", "heads"),
    [([BRANCH], 2), ([BRANCH, MERGE], 1), ([COMMENTED], 1), ([BRANCH, MERGE_OVER_LINES], None)],
    ids=["two heads", "a merge of two heads", "comments after the revisions", "a merge written over lines"],
)
def test_heads_of_branched_scripts_are_alembics_or_left_to_it(tmp_path, monkeypatch, added, heads):
    """The heads read from the scripts' lines are Alembic's, or None (Alembic decides) where a line is not whole."""
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    scripts = ScriptDirectory(str(copy))
    (newest,) = scripts.get_heads()
    parent = scripts.get_revision(newest).down_revision
    for number, script in enumerate(added):
        source = script.format(parent=parent, newest=newest)
        (copy / "versions" / f"9{number}_added.py").write_text(f'"""Added by the test."""\n{source}')
    monkeypatch.setattr("geoservice.infra.database.MIGRATIONS", copy)
    script_heads.cache_clear()
    try:
        found = script_heads()
    finally:
        script_heads.cache_clear()
    if heads is None:
        assert found is None
    else:
        assert found == frozenset(ScriptDirectory(str(copy)).get_heads())
        assert len(found) == heads


def test_a_database_one_revision_behind_is_migrated(empty_db: Engine):
    """Start-up skips Alembic only for a database at the newest revision; one behind still gets it."""
    assert at_head(empty_db)
    _alembic(empty_db, command.downgrade, "-1")
    assert not at_head(empty_db)
    migrate(empty_db)
    assert at_head(empty_db)
    with empty_db.connect() as conn:
        assert set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) == script_heads()


def test_every_geometry_column_has_a_gist_index(empty_db: Engine):
    with empty_db.connect() as conn:
        columns = conn.execute(
            text("SELECT f_table_name, f_geometry_column FROM geometry_columns WHERE f_table_schema = 'public'")
        ).all()
        indexed = {
            (row.tablename, row.indexdef.split("(")[-1].rstrip(")"))
            for row in conn.execute(text("SELECT tablename, indexdef FROM pg_indexes WHERE indexdef LIKE '%gist%'"))
        }
    assert len(columns) >= 7
    assert set(columns) <= indexed


@pytest.fixture
def with_event(empty_db: Engine) -> Engine:
    with empty_db.begin() as conn:
        conn.execute(text("INSERT INTO categories VALUES ('public_order', '社会治安', NULL, 1, 24)"))
        conn.execute(
            text(
                "INSERT INTO events (id, geom, category_code, occurred_at) "
                "VALUES (1, 'SRID=4326;POINT(120.5 32.4)', 'public_order', now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO event_log (event_id, actor, role, action, to_status) "
                "VALUES (1, 'a', 'public', 'report', 'reported')"
            )
        )
    return empty_db


@pytest.mark.parametrize(
    "statement",
    ["UPDATE event_log SET note = 'rewritten'", "DELETE FROM event_log", "TRUNCATE event_log CASCADE"],
)
def test_event_log_is_append_only(with_event: Engine, statement: str):
    with pytest.raises(DBAPIError, match="append-only"), with_event.begin() as conn:
        conn.execute(text(statement))
    with with_event.connect() as conn:
        assert conn.execute(text("SELECT count(*), min(note) FROM event_log")).one() == (1, "")


def test_published_periods_cannot_overlap(empty_db: Engine):
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO boundary_versions (name, status, effective_from, note) "
                "VALUES ('a', 'published', '2026-01-01+08', '')"
            )
        )
    with pytest.raises(IntegrityError, match="ex_boundary_versions_period"), empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO boundary_versions (name, status, effective_from, note) "
                "VALUES ('b', 'published', '2026-06-01+08', '')"
            )
        )


@pytest.mark.parametrize(
    ("code", "community", "constraint"),
    [
        ("32068210200300", "320682102003", "code_format"),
        ("320682102004001", "320682102003", "code_in_community"),
    ],
)
def test_grid_codes_are_checked_by_the_database(empty_db: Engine, code: str, community: str, constraint: str):
    with empty_db.begin() as conn:
        version = conn.execute(
            text("INSERT INTO boundary_versions (name, note) VALUES ('d', '') RETURNING id")
        ).scalar()
    with pytest.raises(IntegrityError, match=constraint), empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO grids (version_id, code, name, community_code, workers, geom, properties) "
                "VALUES (:v, :c, 'g', :cc, '{}', :g, '{}')"
            ),
            {"v": version, "c": code, "cc": community, "g": MULTIPOLYGON},
        )
