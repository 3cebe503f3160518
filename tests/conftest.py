"""Test fixtures: a real PostGIS cluster started through the project's own embedded-cluster code.

The cluster lives under ``.geoservice/test`` (apart from the demo's data). One database is migrated
once and used as a template; ``empty_db`` clones it for each test that writes (a clone takes a
fraction of a second), and ``demo_db`` holds the full demo city, built once per run.

The suite runs in two pytest-xdist workers (``scripts/test``). Both share the one cluster, template
and demo city: whichever worker comes first builds them while the other waits on a lock (``once``).
Every other database a test makes has a name of its own, and ``--dist loadfile`` keeps a module's
fixtures in one worker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hypothesis.internal.conjecture.optimiser  # noqa: F401 (imported now, see below)
import psycopg
import pytest
from argon2 import PasswordHasher
from filelock import FileLock
from psycopg import sql
from sqlalchemy import Engine

from geoservice.auth import passwords
from geoservice.infra.database import make_engine, migrate
from geoservice.infra.embedded import EmbeddedCluster
from tests.settings import PUBLISHING

ROOT = Path(__file__).parents[1]
TEMPLATE = "geoservice_template"
DEMO_PRISTINE = "geoservice_demo_pristine"  # the demo as loaded, copied for modules that change it
ARTIFACTS = ROOT / "test-artifacts"

# Hashes made by the tests' own process use argon2id at its cheapest: the suite creates and signs in
# a few thousand accounts, and at the service's cost (0.22 s to hash, 0.12 s to check) that was a
# sixth of the suite's time. Still argon2id, still checked for real; a hash carries its parameters,
# so servers the tests start as processes check them as they would any other.
passwords.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

# Hypothesis imports its optimiser only when a test first reaches its targeting phase, and pytest
# rewrites the asserts of a plugin's modules as they are imported, parsing their source with
# ``ast.parse``. CPython 3.11's AST constructor keeps its recursion depth per interpreter, not per
# thread (python/cpython#106905, pytest-dev/pytest#10763): with the app's threads running beside a
# test, that parse once failed with "SystemError: AST constructor recursion depth mismatch". Imported
# here, at collection, the parse happens before any test has started a thread.


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of this run's, the same for every xdist worker of it (their base temps' parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def once(run_dir: Path, name: str) -> Iterator[bool]:
    """Held by one worker at a time; says True to the first worker of the run to get here.

    The block is marked done only when it ends without an exception, so a failed build is tried
    again (and fails again, visibly) in the next worker rather than being taken as built.
    """
    with FileLock(run_dir / f"{name}.lock"):
        done = run_dir / f"{name}.done"
        first = not done.exists()
        yield first
        done.touch()


@pytest.fixture(scope="session")
def cluster(run_dir: Path) -> EmbeddedCluster:
    # GEOSERVICE_TEST_CLUSTER lets two checkouts (or two people) run the suite side by side.
    cluster = EmbeddedCluster(Path(os.environ.get("GEOSERVICE_TEST_CLUSTER", ROOT / ".geoservice" / "test")))
    with once(run_dir, "cluster") as first:
        cluster.up(TEMPLATE)
        if first:
            cluster.ensure_database(TEMPLATE, fresh=True)
            engine = make_engine(cluster.url(TEMPLATE))
            migrate(engine)
            engine.dispose()
    return cluster


def _admin(cluster: EmbeddedCluster) -> psycopg.Connection:
    return psycopg.connect(cluster.conninfo("postgres"), autocommit=True)


def clone_template(cluster: EmbeddedCluster, name: str, template: str = TEMPLATE) -> str:
    """A new database ``name``, a file copy of ``template`` (which nobody may be connected to)."""
    with _admin(cluster) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
        conn.execute(create.format(sql.Identifier(name), sql.Identifier(template)))
    return cluster.url(name)


def drop_database(cluster: EmbeddedCluster, name: str) -> None:
    with _admin(cluster) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_url(cluster: EmbeddedCluster) -> Iterator[str]:
    """URL of a freshly migrated, empty database of this test's own."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield clone_template(cluster, name)
    drop_database(cluster, name)


@pytest.fixture
def empty_db(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


@pytest.fixture
def use_database(empty_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI (which reads GEOSERVICE_DATABASE_URL) at this test's database."""
    monkeypatch.setenv("GEOSERVICE_DATABASE_URL", empty_url)
    return empty_url


@pytest.fixture(scope="session")
def demo_pack(run_dir: Path) -> Path:
    """Where the run's demo city was written as a city pack before ``city load`` read it."""
    return run_dir / "demo-pack"


@pytest.fixture(scope="session")
def demo_url(cluster: EmbeddedCluster, demo_pack: Path, run_dir: Path) -> str:
    """A database holding the full demo city, loaded once per run; tests only read it."""
    with once(run_dir, "demo") as first:
        if not first:
            return cluster.url("geoservice_demo")
        from geoservice.city.demo import load_demo

        url = clone_template(cluster, "geoservice_demo")
        engine = make_engine(url)
        demo_pack.mkdir(exist_ok=True)
        load_demo(engine, pack_dir=demo_pack, **PUBLISHING)
        engine.dispose()
        # A copy nobody connects to, for the tests that change the demo (``demo_copy``): copying the
        # files takes seconds where loading the demo again took a minute of the suite.
        clone_template(cluster, DEMO_PRISTINE, template="geoservice_demo")
        return url


@pytest.fixture(scope="module")
def demo_copy(cluster: EmbeddedCluster, demo_url: str) -> Iterator[Engine]:
    """The full demo city in a database of this module's own, to change at will."""
    name = f"demo_copy_{uuid.uuid4().hex[:8]}"
    engine = make_engine(clone_template(cluster, name, template=DEMO_PRISTINE))
    yield engine
    engine.dispose()
    drop_database(cluster, name)


@pytest.fixture(scope="session")
def demo_db(demo_url: str) -> Iterator[Engine]:
    engine = make_engine(demo_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_configure(config: pytest.Config) -> None:
    # The suite's own cluster, never a developer's server by accident.
    os.environ.pop("GEOSERVICE_DATABASE_URL", None)
    # Every test has a database of its own, so nearly every connection is new, and warming one
    # (PostGIS and the WGS 84 -> CGCS2000 transforms, ~0.1 s of the server's CPU) cost a tenth of
    # the suite (measured: 810 s against 731 s; three API files 98 s against 70 s). Servers and
    # commands the tests start inherit it; tests/geoservice/test_warm_up.py runs the warm-up itself.
    os.environ["GEOSERVICE_WARM_CONNECTIONS"] = "false"
