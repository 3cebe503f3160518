"""Raster indexes kept on disk, keyed by the boundaries they were built from (issue 23).

A prefecture's grid index takes seconds and hundreds of megabytes to build, and every worker process
builds the same one: at start, and again after each publish. Its arrays depend only on the polygons
(in rank order), the cell size and the build code, so the first process to build them writes them
here and every later one (another worker, a restart, a past version asked again) maps the files
instead: ``np.load(mmap_mode="r")``, so the pages sit once in the page cache, shared by the workers.

The key is a hash of the polygons' WKB, the cell size, the build's constants, ``FORMAT`` and the
GEOS version: a new boundary version, a reordered code list or a changed ``GEOSERVICE_INDEX_CELL_M``
gets a key of its own, so a cached answer can never come from other boundaries. An entry is a
directory ``<key>/`` of ``.npy`` files and a ``meta.json`` written last, made under a temporary name
and renamed into place, and each array's CRC-32 is checked when it is mapped. An entry that does not
read back exactly (truncated, altered, another format) is ignored and rebuilt. A lock file per key
makes workers that start together wait for one build rather than run it side by side. The
``KEEP`` most recently used entries stay; older ones are removed when a new one is written.

A directory is one machine's; with a ``shared`` store (``geoservice.routing.index_store``) an entry
this directory lacks is asked of the database before it is built, and a build is offered to the
database, so a version built once anywhere is not built again by another machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely

from geoservice.routing.index_store import DatabaseIndexStore, StoredEntry

if TYPE_CHECKING:
    from geoservice.routing.raster_index import RasterIndex

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock, workers may build the same entry (harmless)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

FORMAT = 2  # bump whenever the build's output or the stored arrays change meaning (2: two-byte cells)
KEEP = 16  # entries kept: a grid and a station index per version, the current and a few past ones, per city
KEY_CHUNK = 2_000  # polygons turned into WKB at a time while hashing
STALE_TEMP_S = 3600.0  # a temporary directory older than this was left by a writer that died
ARRAYS = {  # the dtypes each array may have
    "cells": (np.uint16, np.uint32),
    "boundary_cells": (np.int32, np.int64),
    "offsets": (np.int64,),
    "candidates": (np.int32,),
}
PARAMS = ("x0", "y0", "dx", "dy", "nx", "ny", "cell_m")


def index_key(polygons: np.ndarray, cell_m: float, constants: dict[str, float]) -> str:
    """Hash of everything the index's arrays depend on (``cell_m`` as asked, before any coarsening)."""
    digest = hashlib.blake2b(digest_size=20)
    header = {"format": FORMAT, "cell_m": float(cell_m), "polygons": len(polygons), "geos": shapely.geos_version_string}
    digest.update(json.dumps({**header, **constants}, sort_keys=True).encode())
    for start in range(0, len(polygons), KEY_CHUNK):  # a few MB of WKB at a time, not a province's at once
        chunk = [
            b"" if wkb is None else wkb
            for wkb in shapely.to_wkb(polygons[start : start + KEY_CHUNK], output_dimension=2)
        ]
        digest.update(np.array([len(wkb) for wkb in chunk], dtype="<i8").tobytes())
        digest.update(b"".join(chunk))
    return digest.hexdigest()


class IndexCache:
    """A directory of built indexes; ``fill`` gives an index its arrays, from here or built and stored."""

    def __init__(self, directory: Path | str, keep: int = KEEP, shared: DatabaseIndexStore | None = None) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.shared = shared  # the database's copies (``geoservice.routing.index_store``), asked before a build

    def fill(self, index: RasterIndex, key: str) -> str:
        """Load the index's arrays, or take them from the database, or build and store them.

        ``"hit"`` (this directory), ``"shared"`` (the database's copy, now in this directory too),
        ``"built"``, or ``"uncached"`` (the directory could not be used or written).
        """
        entry = self.directory / key
        if self._load(index, entry, key):
            return "hit"
        with contextlib.ExitStack() as stack:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                stack.enter_context(_locked(self.directory / f"{key}.lock"))
            except OSError as exc:  # a read-only or full disk: answer all the same, from a build of our own
                log.warning("router index cache %s unusable (%s): building without it", self.directory, exc)
                index._build()
                return "uncached"
            if self._load(index, entry, key):  # another worker built it while this one waited for the lock
                return "hit"
            if self._from_shared(index, entry, key):
                self._prune(key)
                return "shared"
            index._build()
            try:
                self._store(index, entry, key)
            except OSError as exc:
                log.warning("could not write the router index cache entry %s: %s", entry, exc)
                return "uncached"
            self._load(index, entry, key)  # answer from the shared file pages too (the build's copy is freed)
            self._to_shared(entry, key)
            self._prune(key)
            return "built"

    # --- the database's copy ---------------------------------------------------------------------
    def _from_shared(self, index: RasterIndex, entry: Path, key: str) -> bool:
        """The database's entry, written here and read back through this directory's checks."""
        if self.shared is None:
            return False
        temp = Path(tempfile.mkdtemp(dir=self.directory, prefix=f".{key}-"))
        try:
            if not self.shared.get_into(key, temp):
                return False
            _replace(entry, temp, self.directory, key)
        except OSError as exc:
            log.warning("could not write the router index cache entry %s: %s", entry, exc)
            return False
        finally:
            _remove(temp)
        return self._load(index, entry, key)

    def _to_shared(self, entry: Path, key: str) -> None:
        if self.shared is not None:
            self.shared.offer(key, lambda: _read_entry(entry))

    # --- reading -------------------------------------------------------------------------------
    def _load(self, index: RasterIndex, entry: Path, key: str) -> bool:
        meta_path = entry / "meta.json"
        if not meta_path.exists():
            return False
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("format") != FORMAT or meta.get("key") != key or meta.get("polygons") != len(index.polygons):
                raise ValueError("written for other polygons or by another format")
            if any(meta["params"][name] != getattr(index, name) for name in PARAMS):
                raise ValueError("another raster geometry")
            arrays = {}
            for name, dtypes in ARRAYS.items():
                array = np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                if array.dtype not in dtypes or list(array.shape) != meta["shapes"][name]:
                    raise ValueError(f"{name}: {array.dtype} {array.shape}")
                if zlib.crc32(array.data) != meta["crc32"][name]:
                    raise ValueError(f"{name}: checksum differs")
                arrays[name] = array.view(np.ndarray)  # plain arrays over the map: no memmap overhead per lookup
            if arrays["cells"].shape != (index.ny, index.nx) or arrays["offsets"][0] != 0:
                raise ValueError("inconsistent arrays")
            if arrays["offsets"][-1] != arrays["candidates"].size:
                raise ValueError("inconsistent arrays")
            if arrays["offsets"].size != arrays["boundary_cells"].size + 1:
                raise ValueError("inconsistent arrays")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring router index cache entry %s: %s", entry, exc)
            return False
        for name, array in arrays.items():
            setattr(index, name, array)
        with contextlib.suppress(OSError):
            os.utime(meta_path)  # most recently used: kept by _prune
        return True

    # --- writing -------------------------------------------------------------------------------
    def _store(self, index: RasterIndex, entry: Path, key: str) -> None:
        temp = Path(tempfile.mkdtemp(dir=self.directory, prefix=f".{key}-"))
        try:
            meta: dict = {"format": FORMAT, "key": key, "polygons": len(index.polygons), "shapes": {}, "crc32": {}}
            meta["params"] = {name: getattr(index, name) for name in PARAMS}
            for name in ARRAYS:
                array = np.ascontiguousarray(getattr(index, name))
                np.save(temp / f"{name}.npy", array, allow_pickle=False)
                meta["shapes"][name] = list(array.shape)
                meta["crc32"][name] = zlib.crc32(array.data)
            (temp / "meta.json").write_text(json.dumps(meta))
            _replace(entry, temp, self.directory, key)
        finally:
            _remove(temp)

    def _prune(self, current: str) -> None:
        """Keep the ``keep`` most recently used entries (and ``current``); drop dead writers' leftovers."""
        entries, now = [], time.time()
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if path.name.startswith("."):
                    if path.is_dir() and now - path.stat().st_mtime > STALE_TEMP_S:
                        _remove(path)
                elif path.is_dir() and path.name != current:
                    meta = path / "meta.json"
                    entries.append((meta.stat().st_mtime if meta.exists() else 0.0, path))
        entries.sort(reverse=True)
        for _, path in entries[max(self.keep - 1, 0) :]:
            _remove(path)
            with contextlib.suppress(OSError):
                (self.directory / f"{path.name}.lock").unlink()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (flock on a file of the key's own)."""
    if fcntl is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace(entry: Path, temp: Path, directory: Path, key: str) -> None:
    """Put the finished ``temp`` in ``entry``'s place: readers see no entry or a whole one."""
    if entry.exists():  # an entry that did not read back: move it aside, then take its place
        aside = Path(tempfile.mkdtemp(dir=directory, prefix=f".{key}-old-"))
        entry.rename(aside / "entry")
        _remove(aside)
    temp.rename(entry)


def _read_entry(entry: Path) -> StoredEntry | None:
    """A directory entry's files, mapped rather than read into memory; None (logged) if they cannot be read."""
    try:
        files = {}
        for name in ARRAYS:
            with open(entry / f"{name}.npy", "rb") as handle:  # the map outlives the handle
                files[name] = memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
        return StoredEntry((entry / "meta.json").read_text(), files)
    except OSError as exc:  # pruned or replaced by another process meanwhile
        log.warning("could not read back the router index cache entry %s: %s", entry, exc)
        return None


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
