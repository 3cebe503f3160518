"""The embedded cluster: initialised once, reused, loopback only, stopped cleanly, run unprivileged."""

import getpass
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from geoservice.infra.embedded import EmbeddedCluster


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory):
    # Under the project directory: the cluster's OS user must be able to reach it (tmp dirs are 0700).
    home = Path(__file__).parents[2] / ".geoservice" / "test-embedded"
    cluster = EmbeddedCluster(home)
    yield cluster
    cluster.down()


def test_up_initialises_starts_and_has_postgis(private_cluster: EmbeddedCluster):
    url = private_cluster.up()
    assert url.startswith("postgresql+psycopg://geoservice:")
    assert "@127.0.0.1:" in url
    with psycopg.connect(private_cluster.conninfo()) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3.")
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
    assert listen == "127.0.0.1"
    status = private_cluster.status()
    assert status.initialised and status.running and status.port


def test_second_up_reuses_data_and_port(private_cluster: EmbeddedCluster):
    private_cluster.up()
    with psycopg.connect(private_cluster.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    port = private_cluster.status().port
    assert private_cluster.down() is True
    assert not private_cluster.status().running
    private_cluster.up()
    assert private_cluster.status().port == port
    with psycopg.connect(private_cluster.conninfo()) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)


def test_password_is_required(private_cluster: EmbeddedCluster):
    private_cluster.up()
    port = private_cluster.status().port
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host=127.0.0.1 port={port} user=geoservice password=wrong dbname=geoservice")


def test_server_never_runs_as_root(private_cluster: EmbeddedCluster):
    private_cluster.up()
    pid = (private_cluster.datadir / "postmaster.pid").read_text().splitlines()[0]
    owner = subprocess.run(["ps", "-o", "user=", "-p", pid], capture_output=True, text=True).stdout.strip()
    assert owner == ("geoservice" if os.geteuid() == 0 else getpass.getuser())


def test_down_when_stopped_says_so(private_cluster: EmbeddedCluster):
    private_cluster.up()
    assert private_cluster.down() is True
    assert private_cluster.down() is False
