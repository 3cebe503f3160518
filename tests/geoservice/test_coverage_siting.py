"""Siting: the model's bounded, aggregated demand loses nothing, gains add up, and the CLI answers."""

import itertools
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from sqlalchemy import create_engine
from typer.testing import CliRunner

from geoservice.cli.coverage import coverage_app, write_all
from geoservice.coverage.siting import Demand, bound_candidates, build_problem, demand_cells, exact_gains, solve_mclp
from tests.geoservice.coverage_city import AS_OF, TOWN, load_coverage_city, lonlat


def brute_force_best(demand: Demand, sites: np.ndarray, radius: float, k: int) -> float:
    reach = np.hypot(*(demand.xy[:, None, :] - sites[None, :, :]).transpose(2, 0, 1)) <= radius
    return max(demand.weight[reach[:, list(c)].any(axis=1)].sum() for c in itertools.combinations(range(len(sites)), k))


def test_mclp_on_demand_classes_finds_the_true_optimum():
    rng = np.random.default_rng(7)
    demand = Demand(rng.uniform(0, 5000, (400, 2)), rng.integers(1, 50, 400).astype(float))
    sites = rng.uniform(0, 5000, (9, 2))
    problem = build_problem(demand, sites, 1000.0, "mclp")
    assert len(problem.covers) < len(demand.xy)  # points merged into classes
    run = solve_mclp(problem, 3)
    assert run.status == "Optimal" and len(run.chosen) == 3
    gains = exact_gains(sites[run.chosen], demand, 1000.0)
    best = brute_force_best(demand, sites, 1000.0, 3)
    assert run.objective == pytest.approx(best) and sum(g.gain for g in gains) == pytest.approx(best)


def test_gains_count_each_point_once_largest_first():
    demand = Demand(np.array([[0.0, 0.0], [150.0, 0.0], [400.0, 0.0]]), np.array([10.0, 20.0, 5.0]))
    sites = np.array([[400.0, 0.0], [100.0, 0.0], [50.0, 0.0]])
    gains = exact_gains(sites, demand, 100.0)
    assert [(g.site, g.gain, g.alone) for g in gains] == [(1, 30.0, 30.0), (0, 5.0, 5.0), (2, 0.0, 30.0)]


def test_cells_merge_points_at_their_weighted_centre():
    demand = Demand(np.array([[10.0, 10.0], [30.0, 10.0], [150.0, 10.0]]), np.array([1.0, 3.0, 2.0]))
    cells = demand_cells(demand, 100.0)
    assert cells.weight.tolist() == [4.0, 2.0] and cells.xy.tolist() == [[25.0, 10.0], [150.0, 10.0]]


def test_candidates_are_thinned_to_the_best_per_square():
    sites = np.array([[10.0, 10.0], [20.0, 20.0], [700.0, 10.0], [900.0, 900.0]])
    score = np.array([5.0, 9.0, 1.0, 0.0])
    assert bound_candidates(sites, score, 500.0, 10).tolist() == [1, 2]  # site 3 reaches nobody
    assert bound_candidates(sites, score, 500.0, 1).tolist() == [1]


def test_report_files_are_all_or_nothing(tmp_path: Path):
    with pytest.raises(TypeError):
        write_all(tmp_path, {"a.csv": "x", "b.csv": object()})  # the second file cannot be written
    assert list(tmp_path.iterdir()) == []


def test_cli_suggest_with_a_candidates_file(use_database: str, tmp_path: Path):
    engine = create_engine(use_database)
    load_coverage_city(engine)
    engine.dispose()
    candidates = gpd.GeoDataFrame(
        {"code": ["A", "B", "C"], "name": ["北侧空地", "东侧空地", "远处空地"]},
        geometry=[
            shapely.Point(*lonlat(2000, 3400)),
            shapely.Point(*lonlat(6500, 1500)),
            shapely.Point(*lonlat(7900, 3900)),
        ],
        crs=4326,
    )
    path = tmp_path / "candidates.geojson"
    candidates.to_file(path)
    out = tmp_path / "sites.geojson"
    result = CliRunner().invoke(
        coverage_app,
        [
            "suggest",
            "--k",
            "2",
            "--region",
            TOWN,
            "--candidates",
            str(path),
            "--out",
            str(out),
            "--as-of",
            AS_OF.isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    # 北侧空地 reaches the 50 people 100 m north; 东侧空地 the 30 by the village room and the 20 far east.
    sites = json.loads(out.read_text())["features"]
    assert [(f["properties"]["code"], f["properties"]["gain"]) for f in sites] == [("A", 50.0), ("B", 50.0)]
    assert json.loads(out.with_suffix(".json").read_text())["covered_after"] == 200
    assert "population reached: 100 → 200 of 200" in result.output


def test_cli_suggest_bad_input(use_database: str):
    engine = create_engine(use_database)
    load_coverage_city(engine, people=False)
    engine.dispose()
    result = CliRunner().invoke(coverage_app, ["suggest", "--k", "2"])
    assert result.exit_code == 1 and "no population layer is loaded" in result.output
    assert CliRunner().invoke(coverage_app, ["suggest", "--k", "0"]).exit_code == 2
    assert CliRunner().invoke(coverage_app, ["suggest", "--k", "1", "--level", "precinct"]).exit_code == 2
