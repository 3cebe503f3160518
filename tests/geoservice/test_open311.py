"""Open311 GeoReport v2 through the real app, checked against the field sets of the spec's examples."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

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
from geoservice.open311.settings import Open311Settings
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
ZONE = ZoneInfo("Asia/Shanghai")


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
    asking = {s["service_code"] for s in services if s["metadata"]}  # categories with attributes
    assert asking == set(categories[categories["attributes"].fillna("") != ""]["code"]) >= {"city_management.stall"}


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


def xml(response, root: str) -> ElementTree.Element:
    """The body parsed by the standard library, checked to be the spec's root element."""
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    document = ElementTree.fromstring(response.content)
    assert document.tag == root
    return document


def assert_xml_error(response, code: int) -> str:
    assert response.status_code == code, response.text
    [error] = xml(response, "errors")
    assert error.tag == "error" and {child.tag for child in error} == ERROR_EXAMPLE
    assert error.findtext("code") == str(code)
    return error.findtext("description")


def test_every_resource_in_xml_as_in_json(setup, empty_db: Engine):
    client, key = setup
    services = xml(client.get("/open311/v2/services.xml"), "services")
    as_json = client.get("/open311/v2/services.json").json()
    assert [s.findtext("service_code") for s in services] == [s["service_code"] for s in as_json]
    assert all(s.tag == "service" and {c.tag for c in s} == SERVICE_EXAMPLE for s in services)
    stall = next(s for s in services if s.findtext("service_code") == "city_management.stall")
    assert stall.findtext("metadata") == "true" and stall.findtext("service_name") == "占道经营"

    form = {"api_key": key, "service_code": "city_management.garbage", **HERE, "description": "垃圾 <堆> & 臭"}
    posted = client.post("/open311/v2/requests.xml", data=form)
    assert posted.status_code == 201
    [receipt] = xml(posted, "service_requests")
    assert receipt.tag == "request" and POST_EXAMPLE <= {c.tag for c in receipt}
    request_id = receipt.findtext("service_request_id")
    assert receipt.findtext("account_id") == "" and "网格" in receipt.findtext("service_notice")

    [one] = xml(client.get(f"/open311/v2/requests/{request_id}.xml"), "service_requests")
    assert {c.tag for c in one} == REQUEST_EXAMPLE
    assert one.findtext("description") == "垃圾 <堆> & 臭" and one.findtext("status") == "open"
    assert float(one.findtext("lat")) == pytest.approx(float(HERE["lat"]))
    [same] = client.get(f"/open311/v2/requests/{request_id}.json").json()
    assert {c.tag: c.text for c in one}["requested_datetime"] == same["requested_datetime"]
    listed = xml(client.get("/open311/v2/requests.xml", params={"status": "open"}), "service_requests")
    assert [r.findtext("service_request_id") for r in listed] == [request_id]


def test_errors_take_the_spec_shape_everywhere_in_the_format_asked(setup):
    client, key = setup
    assert "no service request" in assert_xml_error(client.get("/open311/v2/requests/99999.xml"), 404)
    assert_xml_error(client.post("/open311/v2/requests.xml", data={"service_code": "x"}), 400)
    assert_xml_error(client.post("/open311/v2/requests.xml", data={"api_key": "guess", "service_code": "x", **HERE}),
                     403)  # fmt: skip
    # What the framework answers elsewhere as RFC 7807 problems: an unknown path, a 405, a bad type,
    # an unknown parameter, a value too long.
    assert_error(client.get("/open311/v2/nothing.json"), 404)
    assert_xml_error(client.get("/open311/v2/nothing.xml"), 404)
    assert "format" in assert_xml_error(client.get("/open311/v2/services.csv"), 400)  # XML: the default
    not_allowed = client.delete("/open311/v2/services.xml")
    assert_xml_error(not_allowed, 405)
    assert not_allowed.headers["allow"] == "GET"
    assert "stauts" in assert_xml_error(client.get("/open311/v2/requests.xml", params={"stauts": "open"}), 400)
    assert_error(client.get("/open311/v2/requests.json", params={"status": "x" * 100}), 400)
    assert_error(client.get("/open311/v2/services/nothing.here.json"), 404)


def test_jurisdiction_id_is_checked_on_every_endpoint(setup, empty_db: Engine):
    client, key = setup
    resources = ("/open311/v2/services.json", "/open311/v2/services/city_management.garbage.json",
                 "/open311/v2/requests.json")  # fmt: skip
    for url in resources:  # no id configured and no city loaded: none may be named
        assert client.get(url).status_code == 200
        assert_error(client.get(url, params={"jurisdiction_id": "320682"}), 404)
    with empty_db.begin() as conn:  # a city pack remembers its adcode: the default id
        conn.execute(text("INSERT INTO dataset_settings (key, value) VALUES ('city_adcode', '320682')"))
    for url in resources:
        assert client.get(url, params={"jurisdiction_id": "320682"}).status_code == 200
        unknown = client.get(url, params={"jurisdiction_id": "110105"})
        assert_error(unknown, 404)
        assert "'320682'" in unknown.json()[0]["description"]
    client.app.state.open311_settings = Open311Settings(jurisdiction_id="rugao.gov.cn")
    assert client.get(resources[0], params={"jurisdiction_id": "rugao.gov.cn"}).status_code == 200
    assert_xml_error(client.get("/open311/v2/services.xml", params={"jurisdiction_id": "320682"}), 404)
    form = {"api_key": key, "service_code": "city_management.garbage", **HERE}
    assert_error(client.post("/open311/v2/requests.json", data={**form, "jurisdiction_id": "320682"}), 404)
    assert client.post("/open311/v2/requests.json", data={**form, "jurisdiction_id": "rugao.gov.cn"}).status_code == 201


def test_dates_without_a_zone_are_the_citys_time(setup):
    client, key = setup
    form = {"api_key": key, "service_code": "city_management.garbage", **HERE}
    request_id = client.post("/open311/v2/requests.json", data=form).json()[0]["service_request_id"]
    [request] = client.get(f"/open311/v2/requests/{request_id}.json").json()
    local = datetime.fromisoformat(request["requested_datetime"]).astimezone(ZONE).replace(tzinfo=None)

    def listed(start: datetime) -> list[str]:
        naive = start.isoformat(timespec="seconds")
        response = client.get("/open311/v2/requests.json", params={"start_date": naive})
        assert response.status_code == 200, response.text
        return [r["service_request_id"] for r in response.json()]

    # Read as UTC, a minute before the report in Beijing would be eight hours after it: nothing.
    assert listed(local - timedelta(minutes=1)) == [request_id]
    assert listed(local + timedelta(minutes=1)) == []
    day = client.get("/open311/v2/requests.json", params={"start_date": local.date().isoformat()}).json()
    assert [r["service_request_id"] for r in day] == [request_id]
    assert_error(client.get("/open311/v2/requests.json", params={"start_date": "2026-12-05", "end_date": "2026-12-01"}),
                 400)  # fmt: skip


def test_service_definitions_and_attributes_checked_and_stored(setup, empty_db: Engine):
    client, key = setup
    definition = client.get("/open311/v2/services/city_management.stall.json").json()
    assert definition["service_code"] == "city_management.stall"
    goods, stalls = definition["attributes"]
    assert set(goods) == {"variable", "code", "datatype", "required", "datatype_description", "order",
                          "description", "values"}  # the spec's attribute fields  # fmt: skip
    assert (goods["code"], goods["datatype"], goods["required"]) == ("goods", "singlevaluelist", True)
    assert {v["key"] for v in goods["values"]} == {"food", "produce", "other"} and stalls["datatype"] == "number"
    document = xml(client.get("/open311/v2/services/city_management.stall.xml"), "service_definition")
    attributes = document.find("attributes")
    assert [a.findtext("code") for a in attributes] == ["goods", "stalls"]
    assert [v.findtext("name") for v in attributes[0].find("values")] == ["食品", "水果蔬菜", "其他"]
    assert client.get("/open311/v2/services/public_order.fight.json").json()["attributes"] == []
    assert_error(client.get("/open311/v2/services/ufo.json"), 404)

    form = {"api_key": key, "service_code": "city_management.stall", **HERE}
    missing = client.post("/open311/v2/requests.json", data=form)
    assert_error(missing, 400)
    assert "attribute[goods]" in missing.json()[0]["description"]
    for wrong in ({"attribute[goods]": "guns"}, {"attribute[goods]": "food", "attribute[stalls]": "many"},
                  {"attribute[goods]": "food", "attribute[colour]": "red"}):  # fmt: skip
        assert_error(client.post("/open311/v2/requests.json", data={**form, **wrong}), 400)
    posted = client.post("/open311/v2/requests.json", data={**form, "attribute[goods]": "produce",
                                                             "attribute[stalls]": "3"})  # fmt: skip
    assert posted.status_code == 201, posted.text
    noise = {"api_key": key, "service_code": "environment.noise", **HERE,
             "attribute[sources][]": ["business", "residents"], "attribute[since]": "2026-12-01T22:00:00+08:00"}
    assert client.post("/open311/v2/requests.json", data=noise).status_code == 201
    with empty_db.connect() as conn:
        stored = conn.execute(text("SELECT category_code, properties->'attributes' FROM events ORDER BY id")).all()
    assert stored == [("city_management.stall", {"goods": "produce", "stalls": 3.0}),
                      ("environment.noise", {"sources": ["business", "residents"],
                                             "since": "2026-12-01T22:00:00+08:00"})]  # fmt: skip
    assert_error(client.post("/open311/v2/requests.json", data={**form, "attribute[goods]": "food",
                                                                 "attribute[sources][]": "x"}), 400)  # fmt: skip


def test_the_receipt_names_the_department_in_chinese(setup, empty_db: Engine):
    client, key = setup
    form = {"api_key": key, "service_code": "public_order.fight", **HERE}
    [receipt] = client.post("/open311/v2/requests.json", data=form).json()
    with empty_db.connect() as conn:
        name = conn.execute(text("SELECT d.name FROM events e JOIN departments d ON d.code = e.department_code "
                                 "WHERE e.id = :i"), {"i": int(receipt["service_request_id"])}).scalar_one()  # fmt: skip
    assert name in receipt["service_notice"] and name.startswith("市")
    assert receipt["service_notice"].count("；") >= 1 and "police" not in receipt["service_notice"]
