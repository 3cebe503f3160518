"""Planners' drafts through the real app on the tiny city: create, every edit, roles, refusals, uploads, CLI."""

import json
from collections.abc import Iterator
from pathlib import Path

import pyproj
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely import box
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geoservice.app import create_app
from geoservice.cli import app as cli_app
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.etl import tiny_city
from tests.etl.tiny_city import EAST, WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

GEOD = pyproj.Geod(ellps="WGS84")


def geodesic_m2(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(shapely.segmentize(geom, 1e-4))[0])


def geojson(geom) -> dict:
    return shapely.geometry.mapping(geom)


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    with TestClient(create_app(engine=empty_db, routing=RoutingSettings(version_check_s=0.2))) as client:
        yield client


@pytest.fixture
def planner(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.planner, "planner-li")


def new_draft(client: TestClient, auth: dict[str, str], name: str = "2026-12") -> int:
    response = client.post("/v1/boundary-versions", json={"name": name}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def edit(client: TestClient, auth: dict[str, str], draft: int, body: dict, status: int = 200) -> dict:
    response = client.post(f"/v1/boundary-versions/{draft}/edits", json=body, headers=auth)
    assert response.status_code == status, response.text
    return response.json()


def grids_of(client: TestClient, auth: dict[str, str], version: int) -> dict[str, dict]:
    response = client.get(f"/v1/boundary-versions/{version}/grids", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/geo+json")
    return {f["properties"]["code"]: f for f in response.json()["features"]}


def shape(feature: dict):
    return shapely.geometry.shape(feature["geometry"])


def validation(client: TestClient, auth: dict[str, str], version: int) -> dict:
    response = client.get(f"/v1/boundary-versions/{version}/validation", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_draft_copies_the_version_in_force(client: TestClient, planner: dict[str, str]):
    draft = new_draft(client, planner)
    body = client.get(f"/v1/boundary-versions/{draft}", headers=planner).json()
    assert body["status"] == "draft" and body["grids"] == 4 and body["regions"] == 4 and body["based_on_id"] == 1
    assert sorted(grids_of(client, planner, draft)) == sorted(tiny_city.grids()["code"])
    assert validation(client, planner, draft)["valid"] is True
    again = client.post("/v1/boundary-versions", json={"name": "2026-12"}, headers=planner)
    assert again.status_code == 409 and "exists already" in again.json()["detail"]


def test_split_a_grid_by_a_line(client: TestClient, planner: dict[str, str]):
    draft = new_draft(client, planner)
    line = shapely.LineString([(X0 - 0.001, Y0 + 0.4 * D), (X0 + D + 0.001, Y0 + 0.4 * D)])
    result = edit(client, planner, draft, {"op": "split", "grid": WEST + "001", "line": geojson(line)})
    # The larger (northern) part keeps the code; the new one takes the next serial of the community.
    assert result == {"added": [WEST + "003"], "changed": [WEST + "001"], "removed": [], "conformed": [WEST + "002"],
                      "repairs": []}  # fmt: skip
    grids = grids_of(client, planner, draft)
    assert shapely.equals(shape(grids[WEST + "001"]), box(X0, Y0 + 0.4 * D, X0 + D, Y0 + D))
    assert shapely.equals(shape(grids[WEST + "003"]), box(X0, Y0, X0 + D, Y0 + 0.4 * D))
    assert grids[WEST + "003"]["properties"]["workers"] == ["张三", "李四"]  # the same team until reassigned
    # The neighbour gained the split's vertex on the shared edge, so the coverage still matches.
    assert shapely.coverage_is_valid([shape(f) for f in grids.values()])
    assert validation(client, planner, draft)["valid"] is True


def test_merge_grids_and_refuse_a_merge_across_communities(client: TestClient, planner: dict[str, str]):
    draft = new_draft(client, planner)
    result = edit(client, planner, draft, {"op": "merge", "grids": [WEST + "002", WEST + "001"], "name": "西村"})
    assert result["changed"] == [WEST + "001"] and result["removed"] == [WEST + "002"]
    merged = grids_of(client, planner, draft)[WEST + "001"]
    assert shapely.equals(shape(merged), box(X0, Y0, X0 + 2 * D, Y0 + D))
    assert merged["properties"]["name"] == "西村" and merged["properties"]["workers"] == ["张三", "李四", "赵五"]
    refused = edit(client, planner, draft, {"op": "merge", "grids": [WEST + "001", EAST + "001"]}, 422)
    assert "only grids of one community can be merged" in refused["detail"]
    assert validation(client, planner, draft)["valid"] is True


def test_move_a_shared_boundary(client: TestClient, planner: dict[str, str]):
    draft = new_draft(client, planner)
    area = box(X0 + 0.6 * D, Y0 - 0.001, X0 + 1.1 * D, Y0 + D + 0.001)  # the eastern 40 % of West 001 and more
    result = edit(client, planner, draft, {
        "op": "move_boundary", "from_grid": WEST + "001", "to_grid": WEST + "002", "area": geojson(area),
    })  # fmt: skip
    assert result["changed"] == [WEST + "001", WEST + "002"]
    grids = grids_of(client, planner, draft)
    assert shapely.equals(shape(grids[WEST + "001"]), box(X0, Y0, X0 + 0.6 * D, Y0 + D))
    assert shapely.equals(shape(grids[WEST + "002"]), box(X0 + 0.6 * D, Y0, X0 + 2 * D, Y0 + D))
    assert validation(client, planner, draft)["valid"] is True
    nowhere = box(X0 + 5 * D, Y0, X0 + 6 * D, Y0 + D)
    refused = edit(client, planner, draft, {
        "op": "move_boundary", "from_grid": WEST + "001", "to_grid": WEST + "002", "area": geojson(nowhere),
    }, 422)  # fmt: skip
    assert "does not overlap grid" in refused["detail"]


def test_rename_recode_add_remove(client: TestClient, planner: dict[str, str]):
    draft = new_draft(client, planner)
    renamed = edit(
        client, planner, draft, {"op": "update", "grid": EAST + "002", "name": "东村新区", "officer": "周警官"}
    )
    assert renamed["changed"] == [EAST + "002"]
    recoded = edit(client, planner, draft, {"op": "update", "grid": EAST + "002", "code": EAST + "010"})
    assert recoded["added"] == [EAST + "010"] and recoded["removed"] == [EAST + "002"]
    grids = grids_of(client, planner, draft)
    assert (
        grids[EAST + "010"]["properties"]["name"] == "东村新区"
        and grids[EAST + "010"]["properties"]["officer"] == "周警官"
    )
    bad = edit(client, planner, draft, {"op": "update", "grid": EAST + "010", "code": "32068210020"}, 422)
    assert "must be 15 digits" in bad["detail"]
    taken = edit(client, planner, draft, {"op": "update", "grid": EAST + "010", "code": EAST + "001"}, 422)
    assert "already used" in taken["detail"]
    elsewhere = edit(client, planner, draft, {"op": "update", "grid": EAST + "010", "code": "320682100299001"}, 422)
    assert "not a community of this draft" in elsewhere["detail"]

    removed = edit(client, planner, draft, {"op": "remove", "grid": EAST + "010"})
    assert removed["removed"] == [EAST + "010"]
    report = validation(client, planner, draft)
    assert report["valid"] is False and report["counts"] == {"gap": 1}
    hole = shapely.geometry.shape(report["errors"][0]["location"])
    assert shapely.equals(hole, box(X0 + 3 * D, Y0, X0 + 4 * D, Y0 + D))
    added = edit(client, planner, draft, {
        "op": "add", "community_code": EAST, "name": "东村第3网格", "geometry": geojson(hole), "workers": ["吴七"],
    })  # fmt: skip
    assert added["added"] == [EAST + "003"]  # after the highest serial any version holds (002, in v1)
    assert validation(client, planner, draft)["valid"] is True


def test_edits_are_refused_on_published_versions_and_unknown_ones(client: TestClient, planner: dict[str, str]):
    body = {"op": "remove", "grid": WEST + "001"}
    published = edit(client, planner, 1, body, 409)
    assert "is published; only drafts are edited" in published["detail"]
    assert edit(client, planner, 99, body, 404)["title"] == "No such boundary version"
    draft = new_draft(client, planner)
    unknown = edit(client, planner, draft, {"op": "remove", "grid": WEST + "777"}, 422)
    assert "has no grid" in unknown["detail"]
    typo = edit(client, planner, draft, {"op": "explode", "grid": WEST + "001"}, 422)
    assert typo["title"] == "Invalid request"
    line = shapely.LineString([(X0 + 5 * D, Y0), (X0 + 6 * D, Y0 + D)])
    missed = edit(client, planner, draft, {"op": "split", "grid": WEST + "001", "line": geojson(line)}, 422)
    assert "does not cut grid" in missed["detail"]
    assert len(grids_of(client, planner, draft)) == 4


def test_an_invalid_outline_is_refused_and_one_stored_earlier_is_reported_with_where(
    client: TestClient, planner: dict[str, str], empty_db: Engine
):
    draft = new_draft(client, planner)
    bowtie = shapely.Polygon([(X0 + D, Y0), (X0 + 2 * D, Y0 + D), (X0 + 2 * D, Y0), (X0 + D, Y0 + D)])
    refused = edit(client, planner, draft, {"op": "replace_geometry", "grid": WEST + "002",
                                            "geometry": geojson(bowtie)}, status=422)  # fmt: skip
    assert "Self-intersection" in refused["detail"]  # shapely's reason, with where
    assert validation(client, planner, draft)["valid"] is True
    with empty_db.begin() as conn:  # a draft edited before edits were checked (issue 15) may hold one
        conn.execute(text("UPDATE grids SET geom = ST_Multi(ST_GeomFromText(:wkt, 4326)) "
                          "WHERE version_id = :v AND code = :c"), {"wkt": bowtie.wkt, "v": draft, "c": WEST + "002"})
    report = validation(client, planner, draft)
    invalid = [e for e in report["errors"] if e["kind"] == "invalid_geometry"]
    assert len(invalid) == 1 and invalid[0]["codes"] == [WEST + "002"]
    edges = shapely.geometry.shape(invalid[0]["location"])
    assert edges.distance(shapely.Point(X0 + 1.5 * D, Y0 + 0.5 * D)) < 1e-7
    as_map = client.get(f"/v1/boundary-versions/{draft}/validation", params={"format": "geojson"}, headers=planner)
    assert as_map.headers["content-type"].startswith("application/geo+json")
    assert {f["properties"]["kind"] for f in as_map.json()["features"]} == {e["kind"] for e in report["errors"]}


def test_dispatchers_read_drafts_but_do_not_edit_them(client: TestClient, planner: dict[str, str], empty_db: Engine):
    draft = new_draft(client, planner)
    dispatcher = sign_in(client, empty_db, Role.dispatcher)
    assert client.get(f"/v1/boundary-versions/{draft}/validation", headers=dispatcher).status_code == 200
    assert client.get(f"/v1/boundary-versions/{draft}/grids", headers=dispatcher).status_code == 200
    body = {"op": "remove", "grid": WEST + "001"}
    assert client.post(f"/v1/boundary-versions/{draft}/edits", json=body, headers=dispatcher).status_code == 403
    assert client.post(f"/v1/boundary-versions/{draft}/publish", json={}, headers=dispatcher).status_code == 403
    handler = sign_in(client, empty_db, Role.handler)
    assert client.get(f"/v1/boundary-versions/{draft}/validation", headers=handler).status_code == 403


def test_a_draft_from_an_uploaded_file(client: TestClient, planner: dict[str, str], tmp_path: Path):
    grids = tiny_city.grids().assign(name=["甲", "乙", "丙", "丁"])
    path = tiny_city.write(grids, tmp_path / "grids.gpkg")
    with path.open("rb") as upload:
        response = client.post(
            "/v1/boundary-versions/imports", data={"name": "uploaded"},
            files={"grids": ("grids.gpkg", upload, "application/octet-stream")}, headers=planner,
        )  # fmt: skip
    assert response.status_code == 201, response.text
    draft = response.json()
    assert draft["status"] == "draft" and draft["grids"] == 4 and draft["regions"] == 4
    assert grids_of(client, planner, draft["id"])[WEST + "001"]["properties"]["name"] == "甲"


def test_a_bad_upload_creates_nothing(client: TestClient, planner: dict[str, str], tmp_path: Path, empty_db: Engine):
    grids = tiny_city.grids()
    grids.loc[3, "code"] = grids.loc[2, "code"]
    path = tiny_city.write(grids, tmp_path / "grids.geojson")
    response = client.post(
        "/v1/boundary-versions/imports", data={"name": "bad"},
        files={"grids": ("grids.geojson", path.read_bytes(), "application/geo+json")}, headers=planner,
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"feature": 3, "code": EAST + "001", "message": "duplicate code: also used by feature 2"}
    ]
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM boundary_versions WHERE name = 'bad'")).scalar() == 0


def test_the_cli_walk(use_database: str, empty_db: Engine, tmp_path: Path):
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli_app, ["versions", *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return " ".join(result.output.split())

    assert "created draft next (id 2): 4 grids, 4 regions" in run("create", "next")
    line = shapely.LineString([(X0 - 0.001, Y0 + 0.4 * D), (X0 + D + 0.001, Y0 + 0.4 * D)])
    split = json.dumps({"op": "split", "grid": WEST + "001", "line": geojson(line)})
    assert f"added {WEST}003; changed {WEST}001" in run("edit", "next", split)
    (tmp_path / "remove.json").write_text(json.dumps({"op": "remove", "grid": EAST + "002"}))
    run("edit", "next", f"@{tmp_path / 'remove.json'}")
    assert "gap: a gap of" in run("validate", "next", code=1)
    assert "validation error(s)" in run("publish", "next", code=1)
    restore = json.dumps({"op": "add", "community_code": EAST, "name": "东村第2网格",
                          "geometry": geojson(box(X0 + 3 * D, Y0, X0 + 4 * D, Y0 + D))})  # fmt: skip
    run("edit", "next", restore)
    assert "next: valid (5 grids)" in run("validate", "next")
    impact = json.loads(CliRunner().invoke(cli_app, ["versions", "impact", "next"]).stdout)
    assert impact["summary"]["grids"] == {"added": 2, "removed": 1, "changed": 1}
    assert "published next: 5 grids" in run("publish", "next")
    assert "is published; only drafts are edited" in run("edit", "next", split, code=1)
    diff = run("diff", "v1", "next")
    assert f"grids {WEST}003 added" in diff and f"grids {EAST}002 removed" in diff
    assert "published v1 (rollback 1): 4 grids" in run("rollback", "v1")


def test_discard_a_draft_but_never_a_published_version(client: TestClient, planner: dict[str, str]):
    draft = new_draft(client, planner)
    copy = client.post("/v1/boundary-versions", json={"name": "copy", "based_on": draft}, headers=planner).json()
    assert copy["based_on_id"] == draft and copy["grids"] == 4
    assert client.delete(f"/v1/boundary-versions/{draft}", headers=planner).status_code == 204
    assert client.get(f"/v1/boundary-versions/{draft}", headers=planner).status_code == 404
    assert client.get(f"/v1/boundary-versions/{copy['id']}", headers=planner).json()["grids"] == 4
    refused = client.delete("/v1/boundary-versions/1", headers=planner)
    assert refused.status_code == 409 and client.get("/v1/boundary-versions/1", headers=planner).json()["grids"] == 4
