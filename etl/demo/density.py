"""Where people live: town centres and the urban density model every layer samples from.

One model drives grid seeds, posts, places and events, so small grids, dense posts, many places and
many events all fall in the same towns, as they do in a real city.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class UrbanModel:
    """A uniform background plus Gaussian peaks around the town seats (metric coordinates).

    Each seat has a main peak and a few satellites, so built-up areas are lumpy rather than
    bull's-eyes. ``weights`` are the shares of the peaks in a draw (they sum to 1 - ``background``);
    seat 0 is the city centre, whose peaks are the widest and heaviest.
    """

    city: BaseGeometry
    seats: np.ndarray  # (n_towns, 2) town seats, the city centre first
    seat_sigmas: np.ndarray  # (n_towns,) width of each seat's built-up area
    centres: np.ndarray  # (n_peaks, 2)
    sigmas: np.ndarray  # (n_peaks,)
    weights: np.ndarray  # (n_peaks,)
    background: float
    town_spacing: float  # sqrt(city area / n_towns): the length scale of everything urban

    def density(self, xy: np.ndarray) -> np.ndarray:
        """Relative density at ``xy`` (per m², up to the background's normalisation)."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        d2 = ((xy[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2)
        peaks = self.weights / (2 * np.pi * self.sigmas**2) * np.exp(-d2 / (2 * self.sigmas**2))
        return self.background / self.city.area + peaks.sum(axis=1)

    def sample(
        self, n: int, rng: np.random.Generator, *, background: float | None = None, spread: float = 1.0
    ) -> np.ndarray:
        """``n`` points inside the city drawn from the model.

        ``background`` overrides the uniform share and ``spread`` scales the peak widths, so each
        kind of thing keeps the model's geography while being more or less urban than people are.
        """
        share = self.background if background is None else background
        uniform = rng.random(n) < share
        out = np.empty((n, 2))
        out[uniform] = uniform_points(self.city, int(uniform.sum()), rng)
        peaked = np.flatnonzero(~uniform)
        peak = rng.choice(len(self.centres), size=len(peaked), p=self.weights / self.weights.sum())
        out[peaked] = gaussian_points(self.city, self.centres[peak], self.sigmas[peak] * spread, rng)
        return out


def uniform_points(city: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniformly distributed inside ``city`` (rejection from its bounding box)."""
    minx, miny, maxx, maxy = city.bounds
    shapely.prepare(city)
    fill = max(city.area / ((maxx - minx) * (maxy - miny)), 0.05)
    out = np.empty((0, 2))
    while len(out) < n:
        batch = int((n - len(out)) / fill * 1.2) + 16
        xy = np.column_stack([rng.uniform(minx, maxx, batch), rng.uniform(miny, maxy, batch)])
        out = np.vstack([out, xy[shapely.contains_xy(city, xy[:, 0], xy[:, 1])]])
    return out[:n]


def gaussian_points(
    city: BaseGeometry, centres: np.ndarray, sigmas: np.ndarray, rng: np.random.Generator, tries: int = 30
) -> np.ndarray:
    """One normal draw around each of ``centres`` (with its own sigma), redrawn until inside ``city``.

    A centre whose draws keep falling outside (a peak right on a coastline) ends up on the centre
    itself, which callers guarantee is inside.
    """
    centres = np.asarray(centres, dtype=float).reshape(-1, 2)
    sigmas = np.broadcast_to(np.asarray(sigmas, dtype=float), (len(centres),))
    shapely.prepare(city)
    out = centres.copy()
    todo = np.arange(len(centres))
    for _ in range(tries):
        if len(todo) == 0:
            break
        xy = centres[todo] + rng.normal(size=(len(todo), 2)) * sigmas[todo, None]
        inside = shapely.contains_xy(city, xy[:, 0], xy[:, 1])
        out[todo[inside]] = xy[inside]
        todo = todo[~inside]
    return out


def town_centres(city: BaseGeometry, n_towns: int, rng: np.random.Generator) -> np.ndarray:
    """``n_towns`` centres spread over the city, the city centre first.

    k-means of uniform interior points gives each town a similar share of land, like real
    townships, and every centre is snapped to a sample point so it lies inside the city even where
    the boundary is concave. The city centre is the centre nearest the city's centroid.
    """
    sample = uniform_points(city, max(4000, 200 * n_towns), rng)
    centroids = kmeans(sample, n_towns, rng, iterations=25)
    nearest = ((sample[None, :, :] - centroids[:, None, :]) ** 2).sum(axis=2).argmin(axis=1)
    chosen = np.unique(nearest)
    if len(chosen) < n_towns:  # two centroids snapped to one point: add farthest points instead
        chosen = list(chosen)
        while len(chosen) < n_towns:
            d = ((sample[:, None, :] - sample[chosen][None, :, :]) ** 2).sum(axis=2).min(axis=1)
            chosen.append(int(d.argmax()))
        chosen = np.array(chosen)
    centres = sample[np.sort(chosen)]
    middle = np.array(city.centroid.coords[0])
    first = int(((centres - middle) ** 2).sum(axis=1).argmin())
    return np.vstack([centres[first], np.delete(centres, first, axis=0)])


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 20) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; returns the ``k`` centroids."""
    points = np.asarray(points, dtype=float)
    k = min(k, len(points))
    centroids = [points[rng.integers(len(points))]]
    d2 = ((points - centroids[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        pick = rng.choice(len(points), p=d2 / total) if total > 0 else rng.integers(len(points))
        centroids.append(points[pick])
        d2 = np.minimum(d2, ((points - points[pick]) ** 2).sum(axis=1))
    c = np.array(centroids)
    for _ in range(iterations):
        label = nearest_index(points, c)
        counts = np.bincount(label, minlength=k)
        sums = np.zeros_like(c)
        np.add.at(sums, label, points)
        moved = counts > 0
        new = c.copy()
        new[moved] = sums[moved] / counts[moved, None]
        if np.allclose(new, c, rtol=0.0, atol=0.5):
            break
        c = new
    return c


def nearest_index(points: np.ndarray, centres: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Index of the nearest of ``centres`` for each point (chunked to bound memory)."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    out = np.empty(len(points), dtype=np.intp)
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        out[start : start + chunk] = (
            ((block[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        )
    return out


def urban_model(city: BaseGeometry, seats: np.ndarray, rng: np.random.Generator) -> UrbanModel:
    """The density model around ``seats``: the city centre wide and heavy, town seats smaller.

    Shares are those of a typical Jiangsu county: about half the people in the countryside, a fifth
    in the county seat and the rest in the town seats; widths scale with the spacing of the towns so
    any county size gives the same picture. Satellite peaks (inside the city, within about one
    width of the seat) give each built-up area an irregular outline.
    """
    seats = np.asarray(seats, dtype=float)
    n = len(seats)
    spacing = float(np.sqrt(city.area / n))
    seat_sigmas = 0.12 * spacing * rng.uniform(0.8, 1.2, n)
    seat_sigmas[0] = 0.24 * spacing
    background = 0.45
    shares = rng.uniform(0.7, 1.3, n)
    shares = np.concatenate([[0.20], 0.35 * shares[1:] / shares[1:].sum()]) if n > 1 else np.array([0.55])
    centres, sigmas, weights = [], [], []
    for k in range(n):
        n_satellites = 4 if k == 0 else int(rng.integers(1, 4))
        angle = rng.uniform(0, 2 * np.pi, n_satellites)
        reach = rng.uniform(0.6, 1.3, n_satellites) * seat_sigmas[k]
        offsets = np.column_stack([np.cos(angle), np.sin(angle)]) * reach[:, None]
        satellites = seats[k] + offsets
        outside = ~shapely.contains_xy(city, satellites[:, 0], satellites[:, 1])
        satellites[outside] = seats[k]  # a satellite over the border or the river: fold it back
        split = np.concatenate([[1.0], rng.uniform(0.25, 0.6, n_satellites)])
        centres += [seats[k], *satellites]
        sigmas += [seat_sigmas[k] * 0.7, *(seat_sigmas[k] * rng.uniform(0.4, 0.7, n_satellites))]
        weights += list(shares[k] * split / split.sum())
    return UrbanModel(
        city, seats, seat_sigmas, np.array(centres), np.array(sigmas), np.array(weights), background, spacing
    )


def jitter_within(
    polygons: np.ndarray, xy: np.ndarray, sigma: float, rng: np.random.Generator, tries: int = 20
) -> np.ndarray:
    """Each point moved by a normal offset of ``sigma`` while staying inside its own polygon.

    Posts and places sit near, not exactly on, the centre of the unit they belong to; a point whose
    offsets all fall outside keeps its original position (callers pass points inside).
    """
    polygons = np.asarray(polygons, dtype=object)
    out = np.asarray(xy, dtype=float).reshape(-1, 2).copy()
    todo = np.arange(len(out))
    for _ in range(tries):
        if len(todo) == 0:
            break
        moved = out[todo] + rng.normal(0.0, sigma, (len(todo), 2))
        inside = shapely.contains_xy(polygons[todo], moved[:, 0], moved[:, 1])
        out[todo[inside]] = moved[inside]
        todo = todo[~inside]
    return out
