"""A WGS84 → metric transformer rebuilt from the pipeline PROJ chose last time, instead of choosing again.

``Transformer.from_crs`` searches PROJ's database for every operation between two CRSs and ranks
them: about 0.1 s on the 2-core machine, paid by every process before its first point moves
(4 % of a million-point ``geoservice route`` on the county, issue 23). ``from_pipeline`` with the
chosen operation's definition takes 0.1 ms. So the definition is written to ``transformers.json`` in
a cache directory (the router's), keyed by the two EPSG codes and the PROJ and pyproj versions, since
another PROJ or database may choose another operation. Beside it go probe points from the target's
area of use and where the chosen transformer put them: an entry is used only when the rebuilt
transformer moves the probes to exactly the same coordinates, so a damaged or foreign file costs a
rebuild, never a wrong metre.

The transformer handed out is the one rebuilt from the pipeline whenever it reproduces PROJ's choice,
also when there is no directory to remember it in. pyproj gives each thread its own copy of a
transformer on its first use there, and copying one made by ``from_crs`` runs the search again in
that thread (0.06 s measured), where one made from a pipeline is copied in 0.2 ms: each of a
server's request threads, and a router made while another thread chose its transformer, paid the
search again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pyproj

log = logging.getLogger(__name__)

FILE_NAME = "transformers.json"
PROBES_PER_SIDE = 3  # a 3 × 3 lattice over the target CRS's area of use


def transformer_from_wgs84(epsg: int, directory: Path | None) -> pyproj.Transformer:
    """WGS84 lon/lat → ``epsg`` (x = easting), from ``directory``'s remembered pipeline when it still holds."""
    key = _key(epsg)
    entries = _entries(directory) if directory is not None else {}
    remembered = _rebuilt(entries[key]) if key in entries else None
    if remembered is not None:
        return remembered
    chosen = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    entry = _entry(chosen, epsg)
    rebuilt = _rebuilt(entry)
    if rebuilt is None:  # the definition alone does not reproduce the choice: keep choosing each time
        log.info("PROJ's pipeline for %s does not reproduce from its definition; not remembered", key)
        return chosen
    if directory is not None:
        _remember(directory, entries, key, entry, epsg)
    return rebuilt


def _key(epsg: int) -> str:
    return f"EPSG:4326>EPSG:{epsg} always_xy PROJ {pyproj.proj_version_str} pyproj {pyproj.__version__}"


def _entries(directory: Path) -> dict[str, dict]:
    try:
        entries = json.loads((directory / FILE_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _rebuilt(entry: object) -> pyproj.Transformer | None:
    """The entry's transformer if it is whole and moves its probes exactly where they went before."""
    try:
        transformer = pyproj.Transformer.from_pipeline(entry["definition"])  # type: ignore[index]
        lon, lat, x, y = (np.asarray(entry[name], dtype=np.float64) for name in ("lon", "lat", "x", "y"))  # type: ignore[index]
        moved_x, moved_y = transformer.transform(lon, lat)
    except (KeyError, TypeError, ValueError, pyproj.exceptions.ProjError):
        return None
    if lon.size == 0 or not (np.array_equal(moved_x, x) and np.array_equal(moved_y, y)):
        return None
    return transformer


def _entry(chosen: pyproj.Transformer, epsg: int) -> dict[str, object]:
    """The chosen pipeline's definition, and where it moves probe points from the target's area of use."""
    west, south, east, north = pyproj.CRS.from_epsg(epsg).area_of_use.bounds
    lons = np.linspace(west, east, PROBES_PER_SIDE + 2)[1:-1]  # strictly inside the bounds
    lats = np.linspace(south, north, PROBES_PER_SIDE + 2)[1:-1]
    lon, lat = (grid.ravel() for grid in np.meshgrid(lons, lats))
    x, y = chosen.transform(lon, lat)
    return {"definition": chosen.definition, "lon": lon.tolist(), "lat": lat.tolist(),
            "x": np.asarray(x).tolist(), "y": np.asarray(y).tolist()}  # fmt: skip


def _remember(directory: Path, entries: dict[str, dict], key: str, entry: dict[str, object], epsg: int) -> None:
    """Add the chosen pipeline to the file (written whole and renamed into place); a failure only logs."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".transformers-")
        with os.fdopen(handle, "w") as out:
            json.dump({**entries, key: entry}, out)
        os.replace(temporary, directory / FILE_NAME)
    except OSError as exc:
        log.warning("could not remember the transformer to EPSG:%s in %s: %s", epsg, directory, exc)
