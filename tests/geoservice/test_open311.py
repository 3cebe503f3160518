"""Open311 GeoReport v2 through the real app, checked against the field sets of the spec's examples."""

from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from etl.reference import DATA, load_reference_data
from geoservice.app import create_app
from geoservice.cli import app as cli
from geoservice.infra.database import transaction
from geoservice.open311.clients import add_client, set_enabled
from layers.models import Role
from tests.etl.tiny_city import WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

# Field sets of the examples on wiki.open311.org/GeoReport_v2 (GET services, GET/POST requests, errors).
SERVICE_EXAMPLE = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_EXAMPLE = {
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
}  # fmt: skip
POST_EXAMPLE = {"service_request_id", "service_notice", "account_id"}
ERROR_EXAMPLE = {"code", "description"}
HERE = {"lat": str(Y0 + 0.5 * D), "long": str(X0 + 0.5 * D)}


@pytest.fixture
def setup(empty_db: Engine) -> Iterator[tuple[TestClient, str]]:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    with transaction(empty_db) as session:
        load_reference_data(session)
        key = add_client(session, "随手拍")
    with TestClient(create_app(engine=empty_db)) as client:
        yield client, key


def assert_error(response, code: int) -> None:
    assert response.status_code == code, response.text
    body = response.json()
    assert isinstance(body, list) and len(body) == 1 and set(body[0]) == ERROR_EXAMPLE
    assert body[0]["code"] == code and body[0]["description"]


def test_services_are_the_subcategories(setup):
    client, _ = setup
    response = client.get("/open311/v2/services.json")
    assert response.status_code == 200
    services = response.json()
    categories = pd.read_csv(DATA / "categories.csv", dtype=str)
    subs = categories[categories["parent_code"].notna()]
    assert [s["service_code"] for s in services] == sorted(subs["code"])
    assert all(set(s) == SERVICE_EXAMPLE for s in services)
    names = dict(zip(categories["code"], categories["name"], strict=True))
    fight = next(s for s in services if s["service_code"] == "public_order.fight")
    assert fight["service_name"] == "打架斗殴" and fight["group"] == names["public_order"]
    assert fight["type"] == "realtime" and fight["metadata"] is False


def test_post_then_get_a_request(setup, empty_db: Engine):
    client, key = setup
    form = {"api_key": key, "service_code": "city_management.garbage", **HERE, "description": "垃圾堆了三天",
            "first_name": "明", "last_name": "李", "phone": "13800000000", "media_url": "https://img.example/1.jpg"}  # fmt: skip
    posted = client.post("/open311/v2/requests.json", data=form)
    assert posted.status_code == 201, posted.text
    [receipt] = posted.json()
    assert set(receipt) == POST_EXAMPLE | {"possible_duplicates"} and receipt["account_id"] is None  # an extension
    request_id = receipt["service_request_id"]

    [request] = client.get(f"/open311/v2/requests/{request_id}.json").json()
    assert set(request) == REQUEST_EXAMPLE
    with empty_db.connect() as conn:
        event = conn.execute(
            text("SELECT e.*, d.name AS department_name FROM events e LEFT JOIN departments d ON d.code = e.department_code "
                 "WHERE e.id = :id"), {"id": int(request_id)}).one()  # fmt: skip
    assert event.client_id == "随手拍" and event.source == "public" and event.grid_code == WEST + "001"
    assert event.reporter_name == "李 明" and event.photos == [{"url": "https://img.example/1.jpg"}]
    assert request["status"] == "open" and "reported" in request["status_notes"]
    assert request["service_code"] == "city_management.garbage" and request["service_name"] == "垃圾乱堆"
    assert request["agency_responsible"] == event.department_name is not None
    assert request["expected_datetime"] == event.accept_due_at.isoformat()
    assert request["lat"] == pytest.approx(float(HERE["lat"])) and request["long"] == pytest.approx(float(HERE["long"]))
    assert request["media_url"] == "https://img.example/1.jpg" and request["address_id"] == WEST + "001"
    assert "13800000000" not in str(request) and "李" not in str(request)  # no reporter data is published

    # The same report is visible, routed, to staff in /v1/events.
    admin = sign_in(client, empty_db, Role.admin)
    ours = client.get(f"/v1/events/{request_id}", headers=admin).json()
    assert ours["grid_code"] == WEST + "001" and ours["status"] == "reported"


def test_a_retried_post_with_the_same_key_is_one_request(setup):
    client, key = setup
    form = {"api_key": key, "service_code": "city_management.garbage", **HERE, "idempotency_key": "phone-42"}
    first = client.post("/open311/v2/requests.json", data=form).json()[0]["service_request_id"]
    again = client.post("/open311/v2/requests.json", data=form)
    assert again.json()[0]["service_request_id"] == first
    by_header = client.post("/open311/v2/requests.json", data={k: v for k, v in form.items() if k != "idempotency_key"},
                            headers={"Idempotency-Key": "phone-42"})  # fmt: skip
    assert by_header.json()[0]["service_request_id"] == first
    assert len(client.get("/open311/v2/requests.json").json()) == 1


def test_errors_in_the_spec_format(setup, empty_db: Engine):
    client, key = setup
    base = {"service_code": "city_management.garbage", **HERE}
    assert_error(client.post("/open311/v2/requests.json", data=base), 400)  # no api_key
    assert_error(client.post("/open311/v2/requests.json", data={**base, "api_key": "guess"}), 403)
    assert_error(client.post("/open311/v2/requests.json", data={**base, "api_key": key, "service_code": "ufo"}), 400)
    assert_error(client.post("/open311/v2/requests.json", data={"api_key": key, "service_code": "city_management.garbage",
                                                                "address_string": "人民路1号"}), 400)  # fmt: skip
    assert_error(client.post("/open311/v2/requests.json", data={**base, "api_key": key, "lat": "north"}), 400)
    far = client.post("/open311/v2/requests.json", data={**base, "api_key": key, "lat": "39.9", "long": "116.4"})
    assert_error(far, 400)
    assert "grid" in far.json()[0]["description"]
    assert_error(client.get("/open311/v2/requests/99999.json"), 404)
    assert_error(client.get("/open311/v2/requests/abc.json"), 400)
    assert_error(client.get("/open311/v2/requests.json", params={"status": "pending"}), 400)
    assert_error(client.get("/open311/v2/requests.json", params={"start_date": "yesterday"}), 400)
    with transaction(empty_db) as session:
        set_enabled(session, "随手拍", False)
    assert_error(client.post("/open311/v2/requests.json", data={**base, "api_key": key}), 403)
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0  # nothing half-written


def test_requests_filter_by_status_service_and_dates(setup, empty_db: Engine):
    client, key = setup
    ids = [
        client.post("/open311/v2/requests.json", data={"api_key": key, "service_code": code, **HERE}).json()[0][
            "service_request_id"]
        for code in ("city_management.garbage", "environment.noise", "environment.noise")
    ]  # fmt: skip
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE events SET status = 'archived' WHERE id = :id"), {"id": int(ids[2])})
        # An internal find (grid-worker patrol) is not published through Open311.
        conn.execute(text("INSERT INTO events (geom, category_code, source, occurred_at) "
                          "VALUES (ST_SetSRID(ST_MakePoint(120.505, 32.305), 4326), 'environment.noise', 'grid_worker', now())"))  # fmt: skip

    def listed(**params) -> list[str]:
        return [r["service_request_id"] for r in client.get("/open311/v2/requests.json", params=params).json()]

    assert sorted(listed()) == sorted(ids)
    assert listed(status="closed") == [ids[2]]
    assert sorted(listed(status="open")) == sorted(ids[:2])
    assert sorted(listed(service_code="environment.noise")) == sorted(ids[1:])
    assert sorted(listed(service_request_id=f"{ids[0]},{ids[2]}")) == sorted([ids[0], ids[2]])
    assert listed(start_date="2000-01-01T00:00:00Z", end_date="2000-02-01T00:00:00Z") == []
    [closed] = client.get(f"/open311/v2/requests/{ids[2]}.json").json()
    assert closed["status"] == "closed" and "archived" in closed["status_notes"]


def test_cli_adds_a_client_whose_key_works(use_database: str):
    result = CliRunner().invoke(cli, ["open311", "add-client", "县融媒体中心"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    key = result.output.strip().rsplit(" ", 1)[-1]
    assert len(key) >= 40
    again = CliRunner().invoke(cli, ["open311", "add-client", "县融媒体中心"])
    assert again.exit_code == 1 and "exists already" in again.output
    listed = CliRunner().invoke(cli, ["open311", "list-clients"], catch_exceptions=False)
    assert "县融媒体中心" in listed.output and "enabled" in listed.output


def test_sensitive_categories_are_published_without_description_photo_or_fine_place(setup, empty_db: Engine):
    """A dispute (marked sensitive in etl/data/categories.csv) next to an ordinary report, both public."""
    client, key = setup
    precise = {"lat": "32.3051234", "long": "120.5057891"}
    ids = {}
    for code in ("public_order.dispute", "city_management.garbage"):
        form = {"api_key": key, "service_code": code, **precise, "description": "302室与303室因漏水争执",
                "media_url": "https://img.example/2.jpg"}  # fmt: skip
        posted = client.post("/open311/v2/requests.json", data=form)
        assert posted.status_code == 201, posted.text
        ids[code] = posted.json()[0]["service_request_id"]
    listed = {r["service_request_id"]: r for r in client.get("/open311/v2/requests.json").json()}
    for request in (client.get(f"/open311/v2/requests/{ids['public_order.dispute']}.json").json()[0],
                    listed[ids["public_order.dispute"]]):  # fmt: skip
        assert request["description"] == "" and request["media_url"] is None
        assert (request["lat"], request["long"]) == (32.305, 120.506)  # 3 decimals: about 100 m
        assert "302室" not in str(request)
    ordinary = listed[ids["city_management.garbage"]]
    assert ordinary["description"] == "302室与303室因漏水争执" and ordinary["lat"] == pytest.approx(32.3051234)
    with empty_db.connect() as conn:  # staff still have the whole report
        assert conn.execute(text("SELECT description FROM events WHERE id = :i"),
                            {"i": int(ids["public_order.dispute"])}).scalar() == "302室与303室因漏水争执"  # fmt: skip
