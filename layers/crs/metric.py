"""The city's metric CRS: which one it is, and lon/lat geometries projected and measured in it.

Every distance, buffer and area is computed in one projected CRS per city: ``GEOSERVICE_METRIC_CRS``
when the operator configured one, else the CGCS2000 3-degree Gauss-Krüger zone of the data, chosen
at the first load and kept in ``dataset_settings``. The router, coverage reports, boundary
validation and diffs, tiles, the import and the demo builder all ask here, so they cannot disagree
about the zone or measure an area two ways.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import overload

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from layers.crs.convert import _transformer
from layers.dataset import dataset_setting, remember_dataset_settings

# Central meridians of the CGCS2000 3-degree zones that cover China; EPSG:4534 is the CM 75E one.
FIRST_ZONE_CM, LAST_ZONE_CM, FIRST_ZONE_EPSG = 75, 135, 4534
LONLAT_SEGMENT = 1e-4  # degrees, about 10 m: fine enough that chord and arc differ by micrometres
# A square degree is at most 111.7 km × 111.4 km on the ellipsoid (×1.001 for a GK zone's scale).
M2_PER_SQUARE_DEGREE_AT_MOST = 1.25e10
NEGLIGIBLE_M2 = 1e-3
NO_METRIC_CRS = "no data loaded yet, so the city's metric CRS is unknown"

AreaFunction = Callable[[BaseGeometry | None], float]


def metric_epsg_for(lon: float) -> int:
    """Pick the CGCS2000 3-degree Gauss-Krüger zone (CM variant, EPSG:4534-4554) for a longitude.

    These are the zones Chinese surveying and planning data use; within a zone the scale error
    is at most ~3e-4, so lengths and areas computed there are good to a few parts in 10,000.
    The CM variant puts no zone number in front of the easting, which keeps x a plain number.
    Zone edges (odd multiples of 1.5°) go to the eastern zone. The zones span 73.5°E-136.5°E,
    the whole of China, so that is the accepted range rather than the central meridians 75-135.
    """
    if not math.isfinite(lon):
        raise ValueError(f"longitude must be finite, got {lon!r}")
    central_meridian = 3 * math.floor(lon / 3 + 0.5)
    if not FIRST_ZONE_CM <= central_meridian <= LAST_ZONE_CM:
        raise ValueError(f"longitude {lon} is outside the CGCS2000 3-degree zones (73.5°E-136.5°E)")
    return FIRST_ZONE_EPSG + (central_meridian - FIRST_ZONE_CM) // 3


def city_metric_epsg(session: Session, configured: str | None) -> int:
    """The city's metric CRS: ``configured`` (``GEOSERVICE_METRIC_CRS``, e.g. "EPSG:4549") when set, else the dataset's.

    The caller passes the configured value from the settings it built at its edge (the app, a CLI
    command), so every part of the service measures in the same CRS and none reads the environment.
    ValueError when nothing is configured and nothing has been loaded yet.
    """
    if configured:
        return int(configured.upper().removeprefix("EPSG:"))
    stored = _stored_metric_epsg(session)
    if stored is None:
        raise ValueError(NO_METRIC_CRS)
    return stored


def dataset_metric_epsg(session: Session, geoms: Sequence[BaseGeometry | None] | NDArray[np.object_]) -> int:
    """The dataset's metric CRS, chosen (and stored) at the first load from the centre of what is loaded.

    Fixing it once keeps later loads, validation and areas in the zone the first data set chose,
    even when a later file lies mostly in a neighbouring zone.
    """
    stored = _stored_metric_epsg(session)
    if stored is not None:
        return stored
    if len(geoms) == 0 or shapely.is_empty(geoms).all():
        raise ValueError(NO_METRIC_CRS)
    lon = shapely.centroid(shapely.union_all(shapely.envelope(geoms))).x
    epsg = metric_epsg_for(lon)
    remember_metric_epsg(session, epsg)
    return epsg


def remember_metric_epsg(session: Session, epsg: int) -> None:
    """Persist the metric CRS (an explicit setting, or the one derived at the first load)."""
    remember_dataset_settings(session, {"metric_epsg": str(epsg)})


def _stored_metric_epsg(session: Session) -> int | None:
    stored = dataset_setting(session, "metric_epsg")
    return int(stored) if stored else None


def metric_transformer(epsg: int, remember_in: str | os.PathLike | None = None) -> pyproj.Transformer:
    """WGS84 lon/lat → ``epsg`` (x = easting), built once per process and shared (thread-safe since pyproj 3.1).

    ``remember_in``: a cache directory keeping PROJ's chosen pipeline for the next process (0.1 s each).
    """
    return _transformer(4326, epsg, remember_in)


@overload
def project(geoms: BaseGeometry, epsg: int) -> BaseGeometry: ...
@overload
def project(geoms: Sequence[BaseGeometry | None] | NDArray[np.object_], epsg: int) -> NDArray[np.object_]: ...
def project(
    geoms: BaseGeometry | Sequence[BaseGeometry | None] | NDArray[np.object_], epsg: int
) -> BaseGeometry | NDArray[np.object_]:
    """Lon/lat geometries (one, or an array; None allowed) in ``epsg``, all coordinates in one vectorised call."""
    return _projected(geoms, metric_transformer(epsg))


def _projected(geoms: object, to_metric: pyproj.Transformer) -> object:
    return shapely.transform(geoms, lambda xy: np.column_stack(to_metric.transform(xy[:, 0], xy[:, 1])))


def metric_area(epsg: int) -> AreaFunction:
    """Area in m² of a lon/lat geometry (0 for None or empty), measured in the metric CRS ``epsg``.

    Edges are densified first: a straight lon/lat edge is a curve in the metric CRS, and projecting
    only its end points would measure the chord, inventing slivers along every long edge. Import
    validation and boundary validation both measure with this, so they agree on what a sliver is.
    """
    to_metric = metric_transformer(epsg)

    def area_m2(geom: BaseGeometry | None) -> float:
        if geom is None or geom.is_empty:
            return 0.0
        bound = shapely.area(geom) * M2_PER_SQUARE_DEGREE_AT_MOST
        if bound < NEGLIGIBLE_M2:  # most pieces are float noise: no need to project them
            return float(bound)
        return float(shapely.area(_projected(shapely.segmentize(geom, LONLAT_SEGMENT), to_metric)))

    return area_m2


def metric_length(epsg: int) -> AreaFunction:
    """Length in metres of a lon/lat geometry's lines (0 for None or empty), measured in the metric CRS ``epsg``."""
    to_metric = metric_transformer(epsg)

    def length_m(geom: BaseGeometry | None) -> float:
        if geom is None or geom.is_empty:
            return 0.0
        return float(shapely.length(_projected(shapely.segmentize(geom, LONLAT_SEGMENT), to_metric)))

    return length_m
