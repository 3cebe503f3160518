"""The media store: one small interface, a local directory behind it by default, S3 by setting.

A photo's files must never outlive a transaction that did not commit, and a committed photo must
find its files. So writing is two-phase: ``stage`` puts the bytes under a temporary name while the
row is being written; after the commit ``publish`` moves them to their key (an atomic rename on
a local disk), and if the transaction fails ``discard`` removes them. Keys are content addresses
(the SHA-256 of the bytes), so publishing the same key twice is harmless and a retried upload can
re-publish files a crash lost between commit and rename. Staged files a crash left behind are
removed by ``sweep_staged``, which the server runs with its deadline sweep (``geoservice.events.sweep``)
and ``geoservice media sweep`` runs from cron; two sweeps at once (two workers, a server and cron)
both succeed, each counting what it removed.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Protocol

from geoservice.errors import InvalidInput
from geoservice.media.settings import MediaSettings

KEY = re.compile(r"^[a-z0-9]+(/[a-z0-9._-]+)+$")
STAGED = ".staged"


class MediaStore(Protocol):
    """What the photo service needs of a store; keys are ``a/b/c.ext`` paths."""

    def stage(self, data: bytes) -> str:
        """Write ``data`` under a new temporary name and return that name."""
        ...

    def publish(self, staged: str, key: str) -> None:
        """Move a staged file to ``key`` (replacing an identical one if it is there)."""
        ...

    def discard(self, staged: str) -> None:
        """Remove a staged file; one already gone is fine."""
        ...

    def read(self, key: str) -> bytes | None:
        """The bytes at ``key``, or None when there are none."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds bytes."""
        ...

    def sweep_staged(self, older_than_s: float) -> int:
        """Remove staged files older than ``older_than_s`` seconds (a crash's leftovers); returns how many."""
        ...


def checked_key(key: str) -> str:
    """A key, refused if it could leave the store (``..``, absolute paths, odd characters)."""
    if not KEY.match(key) or ".." in key:
        raise InvalidInput(f"not a media key: {key!r}")
    return key


class LocalStore:
    """Files under one directory; staged files in its ``.staged`` folder, on the same file system."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _staging(self) -> Path:
        folder = self.root / STAGED
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def stage(self, data: bytes) -> str:
        name = f"{uuid.uuid4().hex}.part"
        path = self._staging() / name
        with open(path, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return name

    def publish(self, staged: str, key: str) -> None:
        target = self.root / checked_key(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / STAGED / staged, target)

    def discard(self, staged: str) -> None:
        (self.root / STAGED / staged).unlink(missing_ok=True)

    def read(self, key: str) -> bytes | None:
        path = self.root / checked_key(key)
        return path.read_bytes() if path.is_file() else None

    def exists(self, key: str) -> bool:
        return (self.root / checked_key(key)).is_file()

    def sweep_staged(self, older_than_s: float) -> int:
        folder = self.root / STAGED
        cutoff, removed = time.time() - older_than_s, 0
        try:
            paths = list(folder.iterdir())
        except FileNotFoundError:  # nothing was ever staged here
            return 0
        for path in paths:
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:  # another sweep (or the upload's own publish) took it first
                continue
            removed += 1
        return removed


def open_store(settings: MediaSettings) -> MediaStore:
    """The store the settings choose; built once per process (the app, a CLI command)."""
    if settings.media_store == "s3":
        from geoservice.media.s3 import S3Store  # minio is imported only when S3 is chosen

        return S3Store(settings)
    return LocalStore(settings.local_dir)
