"""Where one ``Router.locate`` and one locate answer spend their time (issue 22), and a fingerprint of every answer.

Not a suite (it has no peer): a tool for the router's single-point path. It reads the routers of
the bench cities already in the bench cluster (``python -m bench --suites router`` builds them),
then for each city:

* times each stage of the answer per call (``perf_counter_ns``), on the bench's own seeded points:
  grid lookup, WGS84 → metric, station, posts per level, the whole ``Router.locate``, and the JSON
  answer (``geoservice.api.locate.answer_of`` + ``json.dumps``, as ``JSONResponse`` renders it);
* with ``--profile``, prints a cProfile of a tight loop over ``Router.locate``;
* with ``--outside N``, times ``Router.locate`` on the points outside every grid among N drawn, in
  interleaved rounds without and with the router's outside cells (``Router.index_outside_points``),
  and checks that both give the same answers;
* with ``--save NAME`` / ``--compare NAME``, writes or checks every answer's exact JSON and the
  unrounded distances (``bench/out/answers_<city>_<NAME>.pkl``): a faster path must give the same
  answers, bit for bit, as the one it replaces.

``python -m bench.locate_path [--cities demo] [--points 200000] [--profile] [--outside 200000]
[--save before | --compare before]``
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pickle
import pstats
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.cities import CITY_KEYS, bench_cluster, county_boundary
from bench.points import random_points
from geoservice.api.locate import Audience, answer_of
from geoservice.infra.database import make_engine
from geoservice.routing.loader import load_router
from geoservice.routing.router import Location, Router
from geoservice.settings import DatabaseSettings, RoutingSettings

OUT = Path(__file__).resolve().parent / "out"
STAFF = Audience(True, "12345")


def routers(keys: tuple[str, ...]) -> dict[str, Router]:
    """The routers of the bench cities in the bench cluster (which must have been built)."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    cluster = bench_cluster()
    cluster.up("bench")
    out = {}
    for key in keys:
        engine = make_engine(cluster.url(f"bench_{key}"), DatabaseSettings(pool_size=1))
        try:
            with Session(engine) as session:
                version = session.execute(text("SELECT id FROM boundary_versions WHERE status = 'published'")).scalar()
                out[key] = load_router(session, version, RoutingSettings())
            started = time.perf_counter()
            out[key].index_outside_points()  # as a served router has them once it has met such a point
            print(f"{key}: outside cells built in {time.perf_counter() - started:.2f} s")
        finally:
            engine.dispose()
    return out


def per_call(fn: Callable[..., object], args: list[tuple]) -> np.ndarray:
    """Microseconds of each call (as bench.router times them)."""
    for a in args[:200]:
        fn(*a)
    clock = time.perf_counter_ns
    out = np.empty(len(args), dtype=np.int64)
    gc.collect()
    for k, a in enumerate(args):
        started = clock()
        fn(*a)
        out[k] = clock() - started
    return out / 1000.0


def stages(router: Router, coords: list[tuple[float, float]]) -> dict[str, np.ndarray]:
    """Per-call time of each stage, on the same points."""
    metric = [tuple(router._to_metric.transform(x, y)) for x, y in coords]
    both = [(x, y, mx, my) for (x, y), (mx, my) in zip(coords, metric, strict=True)]
    out = {
        "grid_index.locate": per_call(router.grid_index.locate, coords),
        "to_metric (pyproj)": per_call(router._to_metric.transform, coords),
        "_station": per_call(router._station, both),
    }
    if hasattr(router, "_posts"):
        out["_posts (3 levels)"] = per_call(router._posts, metric)
    out["Router.locate"] = per_call(router.locate, coords)
    located = [(router.locate(x, y), {"lon": x, "lat": y, "crs": "wgs84"}) for x, y in coords]
    out["answer_of + json.dumps"] = per_call(
        lambda loc, point: json.dumps(answer_of(loc, router, point, STAFF), ensure_ascii=False,
                                      allow_nan=False, indent=None, separators=(",", ":")),
        located,
    )  # fmt: skip
    return out


def fingerprint(location: Location, router: Router, x: float, y: float) -> tuple[str, tuple]:
    """The answer's JSON and its unrounded figures (which decide rings and rounding)."""
    answer = json.dumps(answer_of(location, router, {"lon": x, "lat": y, "crs": "wgs84"}, STAFF), sort_keys=True)
    raw = (
        location.snapped_m, location.nearest_grid_m,
        location.station.distance_m if location.station else None,
        tuple(p.distance_m if p else None for p in location.posts.values()),
    )  # fmt: skip
    return answer, raw


def outside_rounds(router: Router, points: Any, rounds: int) -> None:
    """``Router.locate`` outside every grid: the R-tree search against the cells, same points, interleaved."""
    outside = router.grid_index.locate_many(points.lon, points.lat) < 0
    coords = list(zip(points.lon[outside].tolist(), points.lat[outside].tolist(), strict=True))
    finder = router._nearest_grids
    cells = finder._cell_index
    answers = {}
    times: dict[str, list[np.ndarray]] = {"R-tree search": [], "cells": []}
    for _ in range(rounds):
        for way in times:
            finder._cell_index = cells if way == "cells" else None
            times[way].append(per_call(router.locate, coords))
            answers[way] = [router.locate(x, y) for x, y in coords]
    finder._cell_index = cells
    differ = sum(a != b for a, b in zip(answers["R-tree search"], answers["cells"], strict=True))
    print(f"outside every grid: {len(coords):,} points, {differ} answers differ between the two ways")
    for way, runs in times.items():
        figures = "  ".join(f"{np.median(us):6.1f} / {np.percentile(us, 99):6.1f}" for us in runs)
        print(f"  {way:14s} Router.locate median / p99 µs per round: {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cities", default=",".join(CITY_KEYS))
    parser.add_argument("--points", type=int, default=20_000, help="points timed per stage")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--save")
    parser.add_argument("--compare")
    parser.add_argument("--answers", type=int, default=200_000, help="points fingerprinted by --save/--compare")
    parser.add_argument("--outside", type=int, default=0, help="points drawn for the outside-cells rounds (0: none)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    keys = tuple(k for k in args.cities.split(",") if k)
    points = random_points(county_boundary(), max(args.points, args.answers))
    coords = points.head(args.points)
    for key, router in routers(keys).items():
        covered = router.grid_index.locate_many(points.lon[: args.points], points.lat[: args.points]) >= 0
        print(f"\n== {key}: {len(router.grids):,} grids; {args.points:,} points, {int((~covered).sum())} outside")
        for name, us in stages(router, coords).items():
            inside, outside = us[covered], us[~covered]
            print(
                f"{name:28s} median {np.median(us):7.2f} µs  p99 {np.percentile(us, 99):7.2f} µs  "
                f"| inside p99 {np.percentile(inside, 99):7.2f}  outside median {np.median(outside):7.2f} "
                f"p99 {np.percentile(outside, 99):7.2f}"
            )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for x, y in coords:
                router.locate(x, y)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
        if args.outside:
            outside_rounds(router, random_points(county_boundary(), args.outside), args.rounds)
        if args.save or args.compare:
            answers = [fingerprint(router.locate(x, y), router, x, y) for x, y in points.head(args.answers)]
            path = OUT / f"answers_{key}_{args.save or args.compare}.pkl"
            if args.save:
                OUT.mkdir(exist_ok=True)
                path.write_bytes(pickle.dumps(answers))
                print(f"saved {len(answers):,} answers to {path}")
            else:
                before: list[Any] = pickle.loads(path.read_bytes())
                differ = [k for k, (a, b) in enumerate(zip(answers, before, strict=True)) if a != b]
                print(f"compared {len(answers):,} answers with {path.name}: {len(differ)} differ")
                for k in differ[:5]:
                    print("  now   ", answers[k])
                    print("  before", before[k])


if __name__ == "__main__":
    main()
