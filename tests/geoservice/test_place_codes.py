"""场所码 (issue 18): QR codes that decode to the place's page, a community's PDF sheet, the page and its report form."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import sync_playwright
from pypdf import PdfReader
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.field.settings import PlaceCodeSettings
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, COMMUNITY_A, COMMUNITY_B, EVENTS, TOWN_B, centre, load_events_city
from tests.geoservice.signin import sign_in
from tests.webmap.live_server import live_server
from tests.webmap.test_onemap_browser import CHROMIUM_ARGS

BASE = "https://zz.example.cn"
PLACES = [(f"KP{k:03d}", f"甲村商铺{k}号", 0 if k % 2 else 1) for k in range(14)] + [("KPB01", "乙村幼儿园", 2)]


def add_places(engine: Engine) -> None:
    with engine.begin() as conn:
        for code, name, grid in PLACES:
            lon, lat = centre(grid)
            conn.execute(
                text("INSERT INTO key_places (code, name, type, geom, owner, phone, risk_level, inspection_cycle_days) "
                     "VALUES (:code, :name, 'shop', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), '王老板', "
                     "'13900000000', 'medium', 30)"),
                {"code": code, "name": name, "lon": lon + 0.0001 * len(code), "lat": lat},
            )  # fmt: skip


def make_app(engine: Engine, base_url: str | None = BASE):
    app = create_app(engine=engine, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2))
    app.state.event_settings = EVENTS
    app.state.place_code_settings = PlaceCodeSettings(base_url=base_url)
    return app


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_events_city(empty_db)
    add_places(empty_db)
    with TestClient(make_app(empty_db)) as client:
        yield client


def test_a_place_code_decodes_to_its_page(client: TestClient, empty_db: Engine):
    worker = sign_in(client, empty_db, Role.grid_worker, region_code=COMMUNITY_A)
    png = client.get("/v1/places/KP003/qr.png", headers=worker)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert [d.text for d in decoded] == [f"{BASE}/p/KP003"]
    assert client.get("/v1/places/NOPE/qr.png", headers=worker).status_code == 404
    assert client.get("/v1/places/KP003/qr.png").status_code == 401


def test_a_community_sheet_holds_every_place_of_the_community(client: TestClient, empty_db: Engine):
    dispatcher = sign_in(client, empty_db, Role.dispatcher, region_code=COMMUNITY_A)
    sheet = client.get(f"/v1/place-codes/{COMMUNITY_A}.pdf", headers=dispatcher)
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "application/pdf"
    pdf = PdfReader(io.BytesIO(sheet.content))
    assert len(pdf.pages) == 2  # 14 places, 12 a page
    words = "".join(page.extract_text() for page in pdf.pages)
    for code, _, grid in PLACES:
        assert (f"{BASE}/p/{code}" in words) is (grid < 2), code  # community A's places only
    assert sum(len(page.images) for page in pdf.pages) == 14
    other = sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=TOWN_B)
    assert client.get(f"/v1/place-codes/{COMMUNITY_A}.pdf", headers=other).status_code == 404
    assert client.get(f"/v1/place-codes/{COMMUNITY_B}.pdf", headers=other).status_code == 200


def test_the_page_says_what_where_and_who(client: TestClient):
    page = client.get("/p/KP001")  # anyone who scans it
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for words in ("甲村商铺1号", "网格1", "甲村", "张三", "王警官", "12345", "在此报告问题", "风险等级"):
        assert words in page.text, words
    assert client.get("/p/NOPE").status_code == 404


def test_report_a_problem_from_the_page_on_a_phone(empty_db: Engine, artifacts):
    load_events_city(empty_db)
    add_places(empty_db)
    with live_server(make_app(empty_db, None)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            phone = browser.new_context(**p.devices["Pixel 5"], locale="zh-CN")
            page = phone.new_page()
            page.goto(f"{base}/p/KP002")
            assert page.locator("#name").inner_text() == "甲村商铺2号"
            page.select_option("select[name=category]", "city_management.garbage")
            page.fill("textarea[name=description]", "门口垃圾堆放")
            page.click("button[type=submit]")
            page.wait_for_function("document.getElementById('result').textContent.startsWith('已提交')")
            page.screenshot(path=str(artifacts / "place-page-phone.png"))
        finally:
            browser.close()
    with empty_db.connect() as conn:
        stored = conn.execute(text("SELECT grid_code, description, source FROM events")).all()
    assert stored == [(f"{COMMUNITY_A}002", "门口垃圾堆放", "public")]
