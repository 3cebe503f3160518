"""Draft validation on crafted grids: each kind of error found, located where it is, and explained.

The tiny city's four squares are a valid coverage; each test breaks one thing. Expected areas are
geodesic (pyproj.Geod), independent of the metric CRS the service measures in; the two agree to
well under 0.1 % this close to the zone's central meridian.
"""

import pyproj
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely import MultiPolygon, Polygon, box
from sqlalchemy import Engine
from typer.testing import CliRunner

from geoservice.app import create_app
from geoservice.boundaries.validation import Finding, GridShape, check_grids
from geoservice.cli import app as cli_app
from layers.crs import metric_area
from layers.models import Role
from tests.etl import tiny_city
from tests.etl.tiny_city import EAST, WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

GEOD = pyproj.Geod(ellps="WGS84")
AREA = metric_area(4549)  # CGCS2000 3-degree zone 40 (CM 120°E), the one 如皋 uses
CITY = box(X0, Y0, X0 + 4 * D, Y0 + D)


def geodesic_m2(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(shapely.segmentize(geom, 1e-4))[0])


def city_grids(**replace) -> list[GridShape]:
    frame = tiny_city.grids()
    rows = zip(frame["code"], frame["community_code"], frame.geometry, strict=True)
    return [GridShape(code, community, replace.get(code[-4:], geom)) for code, community, geom in rows]


def communities() -> dict[str, shapely.Geometry]:
    frame = tiny_city.regions()
    rows = zip(frame["code"], frame["level"], frame.geometry, strict=True)
    return {code: geom for code, level, geom in rows if level == "community"}


def check(grids: list[GridShape], **kwargs) -> list[Finding]:
    return check_grids(grids, communities(), AREA, outline=CITY, **kwargs)


def only(findings: list[Finding], kind: str) -> Finding:
    matching = [f for f in findings if f.kind == kind]
    assert len(matching) == 1, findings
    return matching[0]


def test_the_tiny_city_is_valid():
    assert check(city_grids()) == []


def test_a_gap_inside_a_community_is_located():
    hole = box(X0 + 0.3 * D, Y0 + 0.3 * D, X0 + 0.6 * D, Y0 + 0.5 * D)
    holed = MultiPolygon([Polygon(tiny_city.square(0).geoms[0].exterior, [hole.exterior.coords])])
    gap = only(check(city_grids(**{"0001": holed})), "gap")
    assert gap.codes == (WEST + "001",)
    assert shapely.equals(gap.location, hole)
    assert gap.area_m2 == pytest.approx(geodesic_m2(hole), rel=1e-3)
    assert f"inside community {WEST}" in gap.message and "belongs to no grid" in gap.message


def test_a_gap_inside_a_community_at_its_edge():
    # East 001 gives up its western strip, which its community still claims.
    strip = box(X0 + 2 * D, Y0, X0 + 2.1 * D, Y0 + D)
    shrunk = MultiPolygon([box(X0 + 2.1 * D, Y0, X0 + 3 * D, Y0 + D)])
    gap = only(check(city_grids(**{"1001": shrunk})), "gap")
    assert shapely.equals(gap.location, strip) and gap.codes == (EAST + "001",)
    assert gap.area_m2 == pytest.approx(geodesic_m2(strip), rel=1e-3)
    assert f"inside community {EAST}" in gap.message


def test_a_gap_between_communities():
    # East's community and its first grid both start a strip further east: the strip is nobody's.
    strip = box(X0 + 2 * D, Y0, X0 + 2.1 * D, Y0 + D)
    shrunk = MultiPolygon([box(X0 + 2.1 * D, Y0, X0 + 3 * D, Y0 + D)])
    narrower = {**communities(), EAST: MultiPolygon([box(X0 + 2.1 * D, Y0, X0 + 4 * D, Y0 + D)])}
    gap = only(check_grids(city_grids(**{"1001": shrunk}), narrower, AREA, outline=CITY), "gap")
    assert shapely.equals(gap.location, strip)
    assert gap.area_m2 == pytest.approx(geodesic_m2(strip), rel=1e-3)
    assert set(gap.codes) == {WEST + "002", EAST + "001"}
    assert f"between communities {WEST}, {EAST}" in gap.message


def test_an_overlap_is_located():
    grown = MultiPolygon([box(X0, Y0, X0 + 1.2 * D, Y0 + D)])
    overlap = only(check(city_grids(**{"0001": grown})), "overlap")
    assert overlap.codes == (WEST + "001", WEST + "002")
    assert shapely.equals(overlap.location, box(X0 + D, Y0, X0 + 1.2 * D, Y0 + D))
    assert overlap.area_m2 == pytest.approx(geodesic_m2(box(X0 + D, Y0, X0 + 1.2 * D, Y0 + D)), rel=1e-3)
    assert "overlap by" in overlap.message


def sliver_grid(area_m2: float) -> MultiPolygon:
    """West 001 with its north-east corner pulled west: a thin triangular gap of about ``area_m2``."""
    _, _, height = GEOD.inv(X0 + D, Y0, X0 + D, Y0 + D)
    _, _, metres_per_degree = GEOD.inv(X0 + D, Y0 + D, X0 + 2 * D, Y0 + D)
    shift = 2 * area_m2 / height / (metres_per_degree / D)
    return MultiPolygon([Polygon([(X0, Y0), (X0 + D, Y0), (X0 + D - shift, Y0 + D), (X0, Y0 + D)])])


def test_a_sliver_under_the_tolerance_is_accepted_and_one_above_it_is_not():
    assert check(city_grids(**{"0001": sliver_grid(0.5)})) == []
    gap = only(check(city_grids(**{"0001": sliver_grid(5.0)})), "gap")
    assert gap.area_m2 == pytest.approx(5.0, rel=0.02)
    # The tolerance is a setting: at 10 m² the same gap is a sliver.
    assert check(city_grids(**{"0001": sliver_grid(5.0)}), sliver_m2=10.0) == []


def test_a_grid_reaching_outside_its_community():
    # West 002 takes the first half of East 001 (which shrinks accordingly): no gap, no overlap.
    grown = MultiPolygon([box(X0 + D, Y0, X0 + 2.5 * D, Y0 + D)])
    shrunk = MultiPolygon([box(X0 + 2.5 * D, Y0, X0 + 3 * D, Y0 + D)])
    findings = check(city_grids(**{"0002": grown, "1001": shrunk}))
    outside = only(findings, "not_nested")
    assert outside.codes == (WEST + "002",)
    assert shapely.equals(outside.location, box(X0 + 2 * D, Y0, X0 + 2.5 * D, Y0 + D))
    assert f"outside its community {WEST}" in outside.message
    assert {f.kind for f in findings} == {"not_nested", "gap"}  # East's community lost that ground


def test_a_self_intersection_is_located_on_the_crossing_edges():
    bowtie = Polygon([(X0 + D, Y0), (X0 + 2 * D, Y0 + D), (X0 + 2 * D, Y0), (X0 + D, Y0 + D)])
    invalid = only(check(city_grids(**{"0002": MultiPolygon([bowtie])})), "invalid_geometry")
    assert invalid.codes == (WEST + "002",)
    assert "Self-intersection" in invalid.message
    crossing = shapely.Point(X0 + 1.5 * D, Y0 + 0.5 * D)
    assert invalid.location.geom_type == "MultiLineString" and len(invalid.location.geoms) == 2
    assert all(edge.distance(crossing) < 1e-9 for edge in invalid.location.geoms)


def test_bad_codes():
    grids = city_grids()
    grids[1] = GridShape("32068210020002", WEST, grids[1].geom)  # 14 digits
    grids[3] = GridShape(WEST + "009", EAST, grids[3].geom)  # not its community's prefix
    findings = check(grids)
    malformed = [f for f in findings if f.kind == "malformed_code"]
    assert [f.codes for f in malformed] == [("32068210020002",), (WEST + "009",)]
    assert "not 15 digits" in malformed[0].message and f"start with its community's code {EAST}" in malformed[1].message
    assert malformed[0].location == grids[1].geom


def test_duplicate_codes_and_unknown_communities():
    grids = city_grids()
    grids[1] = GridShape(WEST + "001", WEST, grids[1].geom)
    grids[3] = GridShape("320682100299001", "320682100299", grids[3].geom)
    findings = check(grids)
    assert only(findings, "duplicate_code").codes == (WEST + "001",)
    unknown = only(findings, "unknown_community")
    assert unknown.codes == ("320682100299001",) and "not in this version" in unknown.message


def test_tiny_and_empty_grids():
    tiny = MultiPolygon([box(X0, Y0, X0 + 0.0005, Y0 + 0.0005)])  # about 47 m × 55 m … too big
    speck = MultiPolygon([box(X0 + 0.5 * D, Y0 + 0.5 * D, X0 + 0.5 * D + 5e-5, Y0 + 0.5 * D + 5e-5)])
    findings = check_grids(
        [GridShape(WEST + "001", WEST, speck), GridShape(WEST + "002", WEST, MultiPolygon())],
        communities(), AREA, tiny_m2=100.0,
    )  # fmt: skip
    assert only(findings, "tiny_grid").area_m2 == pytest.approx(geodesic_m2(speck), rel=1e-3)
    assert only(findings, "empty_grid").codes == (WEST + "002",)
    assert not [
        f for f in check_grids([GridShape(WEST + "001", WEST, tiny)], communities(), AREA) if f.kind == "tiny_grid"
    ]


# --- the configured metric CRS -------------------------------------------------------------------
def test_validation_and_diff_measure_in_the_configured_metric_crs(
    empty_db: Engine, use_database: str, monkeypatch: pytest.MonkeyPatch
):
    """With ``GEOSERVICE_METRIC_CRS`` set, validation and diffs (API and CLI) measure in it, as the router does.

    EPSG:4544 (CM 105°E) lies 15.5° west of the tiny city, so its areas are about 5 % larger than in the
    city's own zone (EPSG:4549, the one the import stores), which agrees with the geodesic area.
    """
    monkeypatch.delenv("GEOSERVICE_METRIC_CRS", raising=False)
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    removed = EAST + "002"
    hole = tiny_city.grids().set_index("code").geometry[removed]

    def areas(client: TestClient, auth: dict[str, str], draft: int) -> tuple[float, float]:
        """The area of the gap the removal leaves (validation) and of the removed grid (diff)."""
        errors = client.get(f"/v1/boundary-versions/{draft}/validation", headers=auth).json()["errors"]
        (gap,) = [e for e in errors if e["kind"] == "gap"]
        grids = client.get(f"/v1/boundary-versions/1/diff/{draft}", headers=auth).json()["grids"]
        (change,) = [c for c in grids if c["code"] == removed]
        return gap["area_m2"], change["area_before_m2"]

    with TestClient(create_app(engine=empty_db)) as client:
        auth = sign_in(client, empty_db, Role.planner, "planner-auto")
        draft = client.post("/v1/boundary-versions", json={"name": "gap"}, headers=auth).json()["id"]
        body = {"op": "remove", "grid": removed}
        assert client.post(f"/v1/boundary-versions/{draft}/edits", json=body, headers=auth).status_code == 200
        auto = areas(client, auth, draft)
    monkeypatch.setenv("GEOSERVICE_METRIC_CRS", "EPSG:4544")
    with TestClient(create_app(engine=empty_db)) as client:
        configured = areas(client, auth=sign_in(client, empty_db, Role.planner, "planner-configured"), draft=draft)
    cli = CliRunner().invoke(cli_app, ["versions", "validate", "gap"], catch_exceptions=False)

    assert auto == pytest.approx((geodesic_m2(hole),) * 2, rel=1e-3)
    assert configured == pytest.approx((metric_area(4544)(hole),) * 2, rel=1e-6)
    assert configured[0] / auto[0] > 1.05
    assert cli.exit_code == 1 and f"a gap of {configured[0]:,.1f} m²" in " ".join(cli.output.split())
