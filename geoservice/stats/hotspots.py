"""Hotspots: grids whose event counts, with their neighbours', are significantly high (Getis-Ord Gi*).

Gi* (PySAL ``esda.G_Local`` with ``star=True``, binary queen-contiguity weights from ``libpysal``)
compares the events in each grid and its touching neighbours with the city-wide mean; its z-score is
the analytic one, its p-value the pseudo p-value of conditional permutations (seeded, so the same
data and seed give the same answer). A hotspot has z > 0 and p < alpha. The z-scores are the
textbook ones: Gi* = (Σ w·x − x̄·W) / (S·√((n·Σw² − W²)/(n − 1))).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.stats.filters import Condition

PERMUTATIONS = 999
COLUMNS = ("code", "name", "community_code", "events", "z", "p_value", "lon", "lat")


@dataclass(frozen=True)
class GridCounts:
    """The grids analysed (in code order), their polygons and event counts."""

    codes: list[str]
    names: list[str]
    communities: list[str]
    polygons: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class GiStar:
    """Gi* per grid: analytic z-scores and permutation pseudo p-values (one-sided, towards the sign)."""

    z: np.ndarray
    p: np.ndarray


def grid_counts(session: Session, version_id: int, where: Condition, grid_filter: Condition) -> GridCounts:
    """Every grid of the version that the filter keeps, with the number of matching events routed to it."""
    sql = f"""
        SELECT g.code, g.name, g.community_code, ST_AsBinary(g.geom) AS wkb,
               (SELECT count(*) FROM events e WHERE e.grid_code = g.code AND {where.sql}) AS events
          FROM grids g WHERE g.version_id = :v AND {grid_filter.sql}
         ORDER BY g.code
    """
    rows = session.execute(text(sql), {"v": version_id, **where.params, **grid_filter.params}).all()
    return GridCounts(
        codes=[r.code for r in rows], names=[r.name for r in rows], communities=[r.community_code for r in rows],
        polygons=shapely.from_wkb([bytes(r.wkb) for r in rows]), counts=np.array([r.events for r in rows], float),
    )  # fmt: skip


def gi_star(polygons: np.ndarray, counts: np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0) -> GiStar:
    """Gi* of ``counts`` over queen contiguity of ``polygons`` (grids sharing an edge or a corner)."""
    import esda
    from libpysal.weights import Queen

    n = len(counts)
    if n < 3 or np.all(counts == counts[0]):
        return GiStar(np.zeros(n), np.ones(n))  # no variation: nothing stands out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands (grids with no neighbour) are legitimate: Gi* keeps their own count
        weights = Queen.from_iterable(list(polygons), ids=list(range(n)))
        result = esda.G_Local(counts, weights, transform="B", star=True, permutations=permutations, seed=seed,
                              n_jobs=1, keep_simulations=False)  # fmt: skip
    return GiStar(np.asarray(result.Zs, float), np.asarray(result.p_sim, float))


def hotspot_rows(grids: GridCounts, gi: GiStar, alpha: float, every: bool = False) -> list[dict]:
    """Grids with z > 0 and p < alpha, highest z first (``every``: all grids, for the map)."""
    centres = shapely.point_on_surface(grids.polygons) if len(grids.codes) else np.array([])
    rows = []
    for i, code in enumerate(grids.codes):
        hot = gi.z[i] > 0 and gi.p[i] < alpha
        if hot or every:
            rows.append({"code": code, "name": grids.names[i], "community_code": grids.communities[i],
                         "events": int(grids.counts[i]), "z": round(float(gi.z[i]), 4),
                         "p_value": round(float(gi.p[i]), 4), "hotspot": bool(hot),
                         "lon": round(float(shapely.get_x(centres[i])), 6),
                         "lat": round(float(shapely.get_y(centres[i])), 6)})  # fmt: skip
    rows.sort(key=lambda r: (-r["z"], r["code"]))
    return rows
