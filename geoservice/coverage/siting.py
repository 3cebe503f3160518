"""Where k new posts of a level would cover the most uncovered demand: PySAL ``spopt`` MCLP (and LSCP).

Demand is what the level's rule leaves uncovered: people (population cells), key places or events,
each a weighted point. Distances are straight lines in the city's metric CRS, as everywhere in the
coverage reports; a real walk or drive is longer.

Keeping the model small. spopt builds its PuLP model from a dense demand × candidate matrix, one
term per pair (MCLP with 2,500 demand points × 1,600 candidates takes ~22 s here, mostly building),
so both sides are bounded before it sees them:

1. **Demand cells.** Uncovered points are summed into square cells of ``radius / 10`` at their
   weighted centroid. On the demo's 100 m population lattice this is the identity for 100 m and 1 km
   rings (one point per cell); it only merges points for 10 km rings.
2. **Candidates.** The rule (``inputs.load_candidate_sites``): every community centre, grid centre
   and key place inside the region, or the sites of a supplied file. Each is scored by the uncovered
   demand within the radius; those scoring nothing are dropped, only the best in each ``radius / 2``
   square is kept (so the survivors are spread out, not piled on one hot spot), then the best
   ``MAX_CANDIDATES`` (300 for MCLP, 800 for LSCP).
3. **Demand classes.** Cells covered by exactly the same kept candidates are interchangeable in the
   model, so they are merged into one demand class with their summed weight. This loses nothing:
   the optimum over the kept candidates is unchanged, and the model's objective *is* the demand
   those sites cover. Cells no kept candidate reaches are left out (and reported). Only when more
   than ``MAX_CLASSES`` classes remain are the cells coarsened (doubling their size), which is then
   an approximation; the gains reported are recomputed on the uncovered points either way.

CBC runs with a time limit; PuLP's status and solution status are reported as they are (with a time
limit hit, "Optimal" status may come with "Solution Found", i.e. feasible, not proven optimal).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_CANDIDATES = {"mclp": 300, "lscp": 1_000}
THIN = {"mclp": 0.5, "lscp": 1.0}  # side of the squares candidates are thinned in, in radii
MAX_CLASSES = 2_500
# pulp and scipy are imported by the functions that solve and search: every server worker imports this module
# (the API's default time limit), few of them ever site a post.
TIME_LIMIT_S = 30.0


@dataclass(frozen=True)
class Demand:
    """Weighted demand points (metric) that no post of the level covers yet."""

    xy: np.ndarray  # (n, 2)
    weight: np.ndarray  # (n,)

    @property
    def total(self) -> float:
        return float(self.weight.sum())


@dataclass(frozen=True)
class Problem:
    """What the solver is given: kept candidates, demand classes and which candidates cover each."""

    candidates: np.ndarray  # indices into the candidate sites
    class_weight: np.ndarray  # (n_classes,)
    covers: list[np.ndarray]  # per class: positions in ``candidates`` within the radius
    cell_m: float
    considered: int  # candidate sites before bounding
    unreachable: float  # demand weight no kept candidate reaches

    def cost_matrix(self) -> np.ndarray:
        """Classes have no single location: 0 where a candidate covers a class, ∞ where it does not."""
        cost = np.full((len(self.covers), len(self.candidates)), np.inf)
        for i, cols in enumerate(self.covers):
            cost[i, cols] = 0.0
        return cost


@dataclass(frozen=True)
class SolverRun:
    """One solve: PuLP's status and solution status, the time it took, and the candidates chosen."""

    model: str
    status: str
    solution: str
    runtime_s: float
    time_limit_s: float
    objective: float | None
    chosen: list[int]  # indices into the candidate sites


@dataclass(frozen=True)
class SiteGain:
    """A chosen site and the demand it adds: ``gain`` after the sites before it, ``alone`` by itself."""

    site: int
    gain: float
    alone: float


def demand_cells(demand: Demand, cell_m: float) -> Demand:
    """Points summed into ``cell_m`` squares at their weighted centroid."""
    if len(demand.xy) == 0:
        return demand
    key = np.floor(demand.xy / cell_m).astype(np.int64)
    _, cell = np.unique(key, axis=0, return_inverse=True)
    cell = cell.ravel()
    weight = np.bincount(cell, weights=demand.weight)
    safe = np.where(weight > 0, weight, 1.0)
    x = np.bincount(cell, weights=demand.xy[:, 0] * demand.weight) / safe
    y = np.bincount(cell, weights=demand.xy[:, 1] * demand.weight) / safe
    return Demand(np.column_stack([x, y]), weight)


def scores(cells: Demand, sites_xy: np.ndarray, radius: float) -> np.ndarray:
    """Uncovered demand within ``radius`` of each site."""
    from scipy.spatial import cKDTree

    if len(cells.xy) == 0 or len(sites_xy) == 0:
        return np.zeros(len(sites_xy))
    reach = cKDTree(cells.xy).query_ball_point(sites_xy, radius)
    return np.array([cells.weight[r].sum() if r else 0.0 for r in reach])


def bound_candidates(sites_xy: np.ndarray, score: np.ndarray, square: float, limit: int) -> np.ndarray:
    """Indices of the best-scoring site per ``square`` (side, m), then the best ``limit`` of those."""
    useful = np.flatnonzero(score > 0)
    if len(useful) == 0:
        return useful
    order = useful[np.lexsort((useful, -score[useful]))]  # best first, ties by index
    key = np.floor(sites_xy[order] / square).astype(np.int64)
    _, first = np.unique(key, axis=0, return_index=True)
    best = order[np.sort(first)]
    return best[:limit]


def build_problem(demand: Demand, sites_xy: np.ndarray, radius: float, model: str) -> Problem:
    """Bound candidates and merge demand into classes (see the module docstring for the rule)."""
    from scipy.spatial import cKDTree

    cell_m = radius / 10
    while True:
        cells = demand_cells(demand, cell_m)
        score = scores(cells, sites_xy, radius)
        kept = bound_candidates(sites_xy, score, THIN[model] * radius, MAX_CANDIDATES[model])
        classes: dict[bytes, int] = {}
        covers: list[np.ndarray] = []
        weight: list[float] = []
        unreachable = 0.0
        reach = cKDTree(sites_xy[kept]).query_ball_point(cells.xy, radius) if len(kept) else [[]] * len(cells.xy)
        for w, cols in zip(cells.weight, reach, strict=True):
            if not cols:
                unreachable += w
                continue
            cols = np.sort(np.asarray(cols, dtype=np.int64))
            key = cols.tobytes()
            if key not in classes:
                classes[key] = len(covers)
                covers.append(cols)
                weight.append(0.0)
            weight[classes[key]] += w
        if len(covers) <= MAX_CLASSES:
            return Problem(kept, np.array(weight), covers, cell_m, len(sites_xy), unreachable)
        cell_m *= 2


def solve_mclp(problem: Problem, k: int, time_limit_s: float = TIME_LIMIT_S) -> SolverRun:
    """The ``k`` candidates that cover the most demand (spopt MCLP, CBC)."""
    if not problem.covers or k >= len(problem.candidates):
        chosen = problem.candidates.tolist()  # nothing to choose between
        return SolverRun("MCLP", "Trivial", "every useful candidate is chosen", 0.0, time_limit_s, None, chosen)
    from spopt.locate import MCLP  # imported when used: spopt takes 2 s to import (PySAL, pandas…)

    started = time.perf_counter()
    mclp = MCLP.from_cost_matrix(problem.cost_matrix(), problem.class_weight, service_radius=0.0, p_facilities=k)
    return _solve(mclp, "MCLP", problem, started, time_limit_s)


def solve_lscp(problem: Problem, time_limit_s: float = TIME_LIMIT_S) -> SolverRun:
    """The fewest candidates that cover every demand class some candidate reaches (spopt LSCP, CBC)."""
    if not problem.covers:
        return SolverRun("LSCP", "Trivial", "no demand to cover", 0.0, time_limit_s, 0.0, [])
    from spopt.locate import LSCP

    started = time.perf_counter()
    lscp = LSCP.from_cost_matrix(problem.cost_matrix(), service_radius=0.0)
    return _solve(lscp, "LSCP", problem, started, time_limit_s)


def _solve(model: Any, name: str, problem: Problem, started: float, time_limit_s: float) -> SolverRun:
    import pulp

    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1, math.ceil(time_limit_s)))
    try:
        model.solve(solver, results=False)
    except RuntimeError:  # spopt refuses a model that CBC did not solve (e.g. no solution within the limit)
        pass
    runtime = time.perf_counter() - started
    problem_ = model.problem
    solved = problem_.status == pulp.LpStatusOptimal
    chosen = [int(problem.candidates[j]) for j, v in enumerate(model.fac_vars) if solved and (v.value() or 0) > 0.5]
    return SolverRun(
        model=name,
        status=pulp.LpStatus[problem_.status],
        solution=pulp.LpSolution[problem_.sol_status],
        runtime_s=runtime,
        time_limit_s=time_limit_s,
        objective=float(pulp.value(problem_.objective)) if solved else None,
        chosen=chosen,
    )


def exact_gains(sites_xy: np.ndarray, demand: Demand, radius: float) -> list[SiteGain]:
    """Demand each site covers, on the uncovered points themselves, ordered greedily (largest gain first).

    ``gain`` counts a point once, for the first site in this order that reaches it, so the gains add
    up to the total the sites cover together; ``alone`` is what each would cover by itself.
    """
    from scipy.spatial import cKDTree

    if len(sites_xy) == 0:
        return []
    if len(demand.xy) == 0:
        return [SiteGain(i, 0.0, 0.0) for i in range(len(sites_xy))]
    reach = [np.asarray(r, dtype=np.intp) for r in cKDTree(demand.xy).query_ball_point(sites_xy, radius)]
    alone = [float(demand.weight[r].sum()) for r in reach]
    covered = np.zeros(len(demand.xy), dtype=bool)
    left = list(range(len(sites_xy)))
    out = []
    while left:
        gains = [float(demand.weight[reach[i][~covered[reach[i]]]].sum()) for i in left]
        best = left[int(np.argmax(gains))]  # first of the largest: ties keep the solver's order
        out.append(SiteGain(best, max(gains), alone[best]))
        covered[reach[best]] = True
        left.remove(best)
    return out
