"""The query points: seeded, mostly inside the county, some in its bounding box around it.

A real workload is mostly points inside the city with a share of bad or far-away ones (GPS off,
wrong CRS, a neighbouring county); 95 % inside and 5 % anywhere in the bounding box is that mix.
The same points, in the same order, go to every method, so the answers can be compared one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

SEED = 42
INSIDE_SHARE = 0.95


@dataclass(frozen=True)
class Points:
    """WGS84 coordinates; ``inside`` says which were drawn inside the county (not which a grid covers)."""

    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    inside: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.lon)

    def head(self, n: int) -> list[tuple[float, float]]:
        """The first ``n`` points as Python floats (what one request carries; no numpy scalars)."""
        return list(zip(self.lon[:n].tolist(), self.lat[:n].tolist(), strict=True))


def random_points(boundary: shapely.Geometry, n: int, seed: int = SEED) -> Points:
    """``n`` points: ``INSIDE_SHARE`` uniform inside ``boundary``, the rest uniform in its bounding box."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = shapely.bounds(boundary)
    n_inside = int(round(n * INSIDE_SHARE))
    shapely.prepare(boundary)
    chunks_x, chunks_y, found = [], [], 0
    while found < n_inside:
        x = rng.uniform(minx, maxx, 2 * (n_inside - found) + 1000)
        y = rng.uniform(miny, maxy, x.size)
        keep = shapely.contains_xy(boundary, x, y)
        chunks_x.append(x[keep])
        chunks_y.append(y[keep])
        found += int(keep.sum())
    lon = np.concatenate([np.concatenate(chunks_x)[:n_inside], rng.uniform(minx, maxx, n - n_inside)])
    lat = np.concatenate([np.concatenate(chunks_y)[:n_inside], rng.uniform(miny, maxy, n - n_inside)])
    inside = np.arange(n) < n_inside
    order = rng.permutation(n)
    return Points(lon[order], lat[order], inside[order])
