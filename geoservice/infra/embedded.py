"""The embedded PostgreSQL + PostGIS cluster that the service runs when no database URL is set.

The cluster lives in ``<home>/pgdata`` (``home`` defaults to ``.geoservice``), listens on loopback
only, on a port that was free when it started, and authenticates with a password generated at
``initdb`` time (``<home>/cluster.json``, readable by the owner only). PostgreSQL refuses to run as
root, so when we are root every server command runs as an unprivileged system user through
``runuser``. The tests start their own cluster through this same class, under another ``home``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

DB_NAME = "geoservice"
DB_ROLE = "geoservice"
# Where the cluster goes when running as root and the OS user cannot reach the project directory
# (a clone under /root, say): the data directory is made there and ``<home>/pgdata`` links to it.
FALLBACK_ROOT = Path("/var/lib/geoservice/clusters")


class ClusterError(RuntimeError):
    """The embedded cluster could not be initialised, started or reached; the message says why."""


@dataclass(frozen=True)
class ClusterStatus:
    """What ``geoservice db status`` prints."""

    initialised: bool
    running: bool
    port: int | None
    datadir: Path


@dataclass
class EmbeddedCluster:
    """One private cluster under ``home``; every method is safe to call again."""

    home: Path
    os_user: str = "geoservice"

    def __post_init__(self) -> None:
        self.home = self.home.absolute()

    # --- paths and state -------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.home / "pgdata"

    @property
    def logdir(self) -> Path:
        return self.home / "pglog"

    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def _save_state(self, state: dict) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    # --- public API ------------------------------------------------------------------------------
    def url(self, dbname: str = DB_NAME) -> str:
        """SQLAlchemy URL of a database in this cluster (the cluster must have been started)."""
        state = self._state()
        if "port" not in state:
            raise ClusterError(f"the embedded cluster under {self.home} was never started: run `geoservice db up`")
        return f"postgresql+psycopg://{DB_ROLE}:{state['password']}@127.0.0.1:{state['port']}/{dbname}"

    def status(self) -> ClusterStatus:
        initialised = (self.datadir / "PG_VERSION").exists()
        running = initialised and self._pg_ctl("status", check=False).returncode == 0
        return ClusterStatus(initialised, running, self._state().get("port"), self.datadir)

    def up(self, dbname: str = DB_NAME) -> str:
        """Initialise (once), start (if stopped) and make sure ``dbname`` has PostGIS; return its URL."""
        self._initdb()
        if not self.status().running:
            self._start()
        self.ensure_database(dbname)
        return self.url(dbname)

    def down(self) -> bool:
        """Stop the server cleanly (fast shutdown: sessions are ended, data is flushed)."""
        if not self.status().running:
            return False
        self._pg_ctl("stop", "-m", "fast", "-w")
        return True

    def ensure_database(self, dbname: str, *, fresh: bool = False) -> None:
        """Create ``dbname`` with the PostGIS extension; with ``fresh``, drop it first."""
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if exists and fresh:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
                exists = None
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    # --- server commands ---------------------------------------------------------------------------
    def conninfo(self, dbname: str = DB_NAME) -> str:
        """The connection string of ``dbname`` for psycopg and psql."""
        state = self._state()
        return f"host=127.0.0.1 port={state['port']} user={DB_ROLE} password={state['password']} dbname={dbname}"

    def _initdb(self) -> None:
        if (self.datadir / "PG_VERSION").exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        self._prepare_dirs()
        password = secrets.token_urlsafe(24)
        pwfile = self.logdir / "initdb.pw"
        pwfile.write_text(password + "\n")
        self._chown(pwfile)
        try:
            self._run(
                pg_bindir() / "initdb",
                "-D", str(self.datadir.resolve()), "-U", DB_ROLE, "--pwfile", str(pwfile.resolve()),
                "--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C.UTF-8",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        self._save_state({**self._state(), "password": password})

    def _start(self) -> None:
        state = self._state()
        port = state.get("port")
        if not port or not _port_is_free(port):
            port = free_port()
        self._save_state({**state, "port": port})
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        result = self._pg_ctl(
            "start", "-w", "-t", "60", "-l", str(self.logdir.resolve() / "postgres.log"), "-o", options, check=False
        )
        if result.returncode != 0:
            why = result.stderr.strip() or result.stdout.strip()
            raise ClusterError(
                f"PostgreSQL did not start (exit {result.returncode}): {why}; see {self.logdir / 'postgres.log'}"
            )

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # Resolved paths: when the home is out of the OS user's reach, pgdata and pglog are links
        # to directories it can reach, and the server must be handed those, not the links.
        return self._run(pg_bindir() / "pg_ctl", "-D", str(self.datadir.resolve()), *args, check=check)

    def _run(self, *cmd: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(c) for c in cmd]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.os_user, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    # --- running as root ---------------------------------------------------------------------------
    def _prepare_dirs(self) -> None:
        """Make the data and log directories, owned by the cluster's OS user when we are root."""
        if os.geteuid() != 0:
            self.datadir.mkdir(mode=0o700, exist_ok=True)
            self.logdir.mkdir(exist_ok=True)
            return
        _ensure_os_user(self.os_user)
        if not self._os_user_can_reach(self.home):
            target = FALLBACK_ROOT / hashlib.sha1(str(self.home).encode()).hexdigest()[:12]
            _clear_orphan(target, self.os_user)
            for name in ("pgdata", "pglog"):
                (target / name).mkdir(parents=True, exist_ok=True)
                link = self.home / name
                if link.is_symlink() or link.exists():
                    link.unlink() if link.is_symlink() else shutil.rmtree(link)
                link.symlink_to(target / name)
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        self.logdir.mkdir(exist_ok=True)
        for path in (self.datadir, self.logdir):
            self._chown(path.resolve())
        self.datadir.resolve().chmod(0o700)

    def _os_user_can_reach(self, path: Path) -> bool:
        probe = subprocess.run(["runuser", "-u", self.os_user, "--", "test", "-x", str(path)], cwd="/")
        return probe.returncode == 0

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _clear_orphan(target: Path, os_user: str) -> None:
    """Empty a fallback directory left by an earlier home of the same path (e.g. a reused temp dir).

    Only called while initialising, i.e. when the home holds no cluster: whatever the directory
    holds belongs to no home any more, and initdb refuses a non-empty data directory.
    """
    if not (target / "pgdata" / "PG_VERSION").exists():
        return
    stop = [str(pg_bindir() / "pg_ctl"), "-D", str(target / "pgdata"), "stop", "-m", "immediate"]
    subprocess.run(["runuser", "-u", os_user, "--", *stop], capture_output=True, cwd="/")
    shutil.rmtree(target)


def _ensure_os_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's binaries (``GEOSERVICE_PG_BINDIR`` overrides)."""
    override = os.environ.get("GEOSERVICE_PG_BINDIR")
    if override:
        return Path(override)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise ClusterError(
            "PostgreSQL is not installed: run scripts/setup (it installs PostgreSQL and PostGIS from "
            "Debian's packages) or set GEOSERVICE_DATABASE_URL to a server of your own"
        )
    return versions[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As PostgreSQL does: connections of the previous run lingering in TIME_WAIT don't block it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
