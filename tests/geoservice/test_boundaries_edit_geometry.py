"""Issue 15: an outline a grid cannot have is refused at the edit (422), so a draft never becomes
unvalidatable — checked case by case, then by hypothesis with random polygons and cutting lines through the real app."""

import itertools
from collections.abc import Iterator

import pytest
import shapely
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import box
from sqlalchemy import Engine

from geoservice.app import create_app
from geoservice.boundaries.settings import BoundarySettings
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.etl.tiny_city import WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

GRID = WEST + "001"
NAMES = itertools.count(1)
LIMITS = BoundarySettings(max_grid_vertices=500)


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    app = create_app(engine=empty_db, routing=RoutingSettings(version_check_s=0.2), boundary_settings=LIMITS)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def planner(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.planner, "planner-li")


def new_draft(client: TestClient, auth: dict[str, str]) -> int:
    response = client.post("/v1/boundary-versions", json={"name": f"draft {next(NAMES)}"}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def polygon(*rings: list[list[float]], z: float | None = None) -> dict:
    coords = [[[*p, z] if z is not None else p for p in ring] for ring in rings]
    return {"type": "Polygon", "coordinates": coords}


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


OWN = square(X0, Y0, X0 + D, Y0 + D)
BAD_OUTLINES = {
    "zero area (a line drawn twice)": polygon([[X0, Y0], [X0 + D, Y0], [X0 + D / 2, Y0], [X0, Y0]]),
    "bowtie": polygon([[X0, Y0], [X0 + D, Y0 + D], [X0 + D, Y0], [X0, Y0 + D], [X0, Y0]]),
    "unclosed ring": polygon(OWN[:-1]),
    "hole outside its shell": polygon(OWN, square(X0 + 2 * D, Y0, X0 + 2.5 * D, Y0 + 0.5 * D)),
    "3-D coordinates": polygon(OWN, z=10.0),
    "huge coordinates": polygon(square(1e308, 1e308, 1.5e308, 1.5e308)),
    "world sized": polygon(square(-179, -89, 179, 89)),
    "over the vertex limit": {"type": "Polygon", "coordinates": [
        [list(c) for c in shapely.segmentize(box(X0, Y0, X0 + D, Y0 + D), D / 300).exterior.coords]]},
    "a sliver far smaller than a square metre": polygon([[X0, Y0], [X0 + D, Y0], [X0 + D, Y0 + 1e-12], [X0, Y0]]),
}  # fmt: skip


@pytest.mark.parametrize("what", list(BAD_OUTLINES))
def test_an_outline_a_grid_cannot_have_is_refused_and_the_draft_still_validates(client, planner, what):
    draft = new_draft(client, planner)
    body = {"op": "replace_geometry", "grid": GRID, "geometry": BAD_OUTLINES[what]}
    response = client.post(f"/v1/boundary-versions/{draft}/edits", json=body, headers=planner)
    assert response.status_code == 422, response.text
    assert response.json()["title"] == "Edit refused" and response.json()["detail"]
    add = {"op": "add", "community_code": WEST, "name": "新格", "geometry": BAD_OUTLINES[what]}
    assert client.post(f"/v1/boundary-versions/{draft}/edits", json=add, headers=planner).status_code == 422
    validation = client.get(f"/v1/boundary-versions/{draft}/validation", headers=planner)
    assert validation.status_code == 200 and validation.json()["valid"] is True  # nothing was written


# --- hypothesis: random outlines never break a draft ---------------------------------------------
coordinate = st.one_of(
    st.floats(X0 - D, X0 + 2 * D),  # near the grid: ordinary, slivers, bowties
    st.floats(-1e308, 1e308, allow_nan=False, allow_infinity=False),  # anything a float holds
    st.sampled_from([X0, X0 + D, Y0, Y0 + D, 0.0, 180.0, -90.0]),  # shared vertices and edges
)
point = st.one_of(st.lists(coordinate, min_size=2, max_size=2), st.lists(coordinate, min_size=3, max_size=3))


@st.composite
def rings(draw: st.DrawFn) -> list[list[float]]:
    ring = draw(st.lists(point, min_size=1, max_size=12))
    return ring + [ring[0]] if draw(st.booleans()) else ring  # closed, or not


geometries = st.one_of(
    st.builds(lambda shell, holes: {"type": "Polygon", "coordinates": [shell, *holes]},
              rings(), st.lists(rings(), max_size=2)),
    st.builds(lambda parts: {"type": "MultiPolygon", "coordinates": [[p] for p in parts]},
              st.lists(rings(), min_size=1, max_size=3)),
    st.sampled_from(list(BAD_OUTLINES.values())),
    st.just({"type": "Polygon", "coordinates": [OWN]}),
)  # fmt: skip


lines = st.one_of(
    st.builds(lambda points: {"type": "LineString", "coordinates": points}, st.lists(point, min_size=2, max_size=6)),
    st.just({"type": "LineString", "coordinates": [[X0 + D / 2, Y0 - D], [X0 + D / 2, Y0 + 2 * D]]}),  # a clean cut
)
OPS = ["replace_geometry", "add", "move_boundary", "split"]
CRSES = ["wgs84", "wgs84", "gcj02", "EPSG:4549"]  # mostly lon/lat, where the drawn shapes land on the grids


def test_random_outlines_give_2xx_or_422_and_the_draft_still_answers(client, planner):
    calls: list[int] = []

    @given(geometry=geometries, line=lines, op=st.sampled_from(OPS), crs=st.sampled_from(CRSES))
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(geometry: dict, line: dict, op: str, crs: str) -> None:
        draft = new_draft(client, planner)
        body = {
            "replace_geometry": {"op": op, "grid": GRID, "geometry": geometry},
            "add": {"op": op, "community_code": WEST, "name": "新格", "geometry": geometry},
            "move_boundary": {"op": op, "from_grid": WEST + "002", "to_grid": GRID, "area": geometry},
            "split": {"op": op, "grid": GRID, "line": line},
        }[op] | {"crs": crs}
        edited = client.post(f"/v1/boundary-versions/{draft}/edits", json=body, headers=planner)
        assert edited.status_code in (200, 422), edited.text
        validation = client.get(f"/v1/boundary-versions/{draft}/validation", headers=planner)
        assert validation.status_code == 200, validation.text
        impact = client.get(f"/v1/boundary-versions/{draft}/impact", headers=planner)
        assert impact.status_code == 200, impact.text
        published = client.post(f"/v1/boundary-versions/{draft}/publish", json={}, headers=planner)
        assert published.status_code in (200, 409), published.text  # 409: the draft has validation errors
        if published.status_code == 409:
            assert client.delete(f"/v1/boundary-versions/{draft}", headers=planner).status_code == 204
        calls.append(edited.status_code)

    check()
    assert len(calls) == 80 and 200 in calls and 422 in calls  # both outcomes were exercised
