"""Ordering rules behind serial numbers in 统计用区划代码-style codes.

Grids, communities and towns are numbered "from west to east, north to south", as a person reads a
map. Imports, planners and the demo city all number things the same way, so the rule lives here.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def grid_serial_order(points_xy: ArrayLike, row_height: float | None = None) -> np.ndarray:
    """Indices of ``points_xy`` in map reading order; the item at position k gets serial k + 1.

    Points are binned into horizontal rows of ``row_height`` counted down from the northernmost
    point; rows are read north to south and each row west to east. A strict sort by y would zig-zag
    across the map whenever two neighbours differ by a metre in latitude, which is not how anyone
    numbers grids. Callers pass about sqrt(mean unit area) (in the units of the coordinates, x east
    and y north, e.g. a projected CRS); by default it is sqrt(bounding-box area / n), the side of
    the square each point would get if the points were spread evenly. Ties keep input order, so the
    result is deterministic.
    """
    xy = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    n = len(xy)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    x, y = xy[:, 0], xy[:, 1]
    if row_height is None:
        width, height = np.ptp(x), np.ptp(y)
        row_height = float(np.sqrt(width * height / n)) if width > 0 and height > 0 else height / n
    if not row_height or row_height <= 0 or not np.isfinite(row_height):
        row = np.zeros(n, dtype=np.int64)  # everything on one line: a single row
    else:
        row = np.floor((y.max() - y) / row_height).astype(np.int64)
    return np.lexsort((np.arange(n), x, row)).astype(np.intp)


def serials(points_xy: ArrayLike, row_height: float | None = None) -> np.ndarray:
    """1-based serial of each point in reading order (the inverse of ``grid_serial_order``)."""
    order = grid_serial_order(points_xy, row_height)
    result = np.empty(len(order), dtype=np.int64)
    result[order] = np.arange(1, len(order) + 1)
    return result
