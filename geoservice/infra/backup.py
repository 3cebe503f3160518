"""``geoservice db backup`` / ``restore``: the whole database through pg_dump and pg_restore.

The dump is PostgreSQL's custom format (compressed, restorable table by table). A backup is written
to a temporary file beside the target and renamed into place only when pg_dump succeeded, so a
failed backup never leaves a truncated file that looks like a good one. A restore replaces every
object the dump holds (``--clean --if-exists``) inside one transaction: it applies completely or,
on the first error, not at all. The client binaries are those of the newest installed PostgreSQL,
which must be at least the server's version (pg_dump refuses older servers' newer dumps, not the
reverse).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from geoservice.infra.embedded import pg_bindir


class BackupError(RuntimeError):
    """pg_dump or pg_restore failed; the message carries their own words."""


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://…`` → ``postgresql://…``, the form libpq's tools read."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(sqlalchemy_url: str, target: Path) -> int:
    """Dump the database into ``target`` (custom format); return the file's size in bytes."""
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        _run("pg_dump", "--format=custom", "--no-owner", "--file", partial, "--dbname", libpq_url(sqlalchemy_url))
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target.stat().st_size


def restore(sqlalchemy_url: str, source: Path) -> None:
    """Replace the database's contents by the dump in ``source``, all or nothing."""
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    _run(
        "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
        "--dbname", libpq_url(sqlalchemy_url), str(source),
    )  # fmt: skip


def _run(tool: str, *args: str) -> None:
    done = subprocess.run([str(pg_bindir() / tool), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        errors = [line for line in lines if "error:" in line] or lines or [f"exit status {done.returncode}"]
        raise BackupError(f"{tool} failed: {errors[0]}")
