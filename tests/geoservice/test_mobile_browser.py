"""The phone app /m in Chromium (issue 18): a worker goes offline, reports with a photo and records a visit,
comes back online, and the dispatcher's queue shows both exactly once; acts on their events, sees their grid on
a small map, records a patrol, and inspects a key place from its page."""

from __future__ import annotations

from pathlib import Path

import requests
from playwright.sync_api import sync_playwright
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.field.duties import load_duties
from geoservice.infra.database import transaction
from geoservice.media.settings import MediaSettings
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, COMMUNITY_A, EVENTS, GRIDS, TOWN_A, centre, load_events_city
from tests.geoservice.photo_files import photo
from tests.geoservice.signin import sign_in
from tests.webmap.live_server import live_server
from tests.webmap.test_onemap_browser import CHROMIUM_ARGS

DUTY = {"code": "rental_check", "name": "出租房屋走访", "level": "grid", "every_days": "7", "region_code": "",
        "description": ""}  # fmt: skip


class Remote:
    """The little of a test client ``sign_in`` uses, over real HTTP to the live server."""

    def __init__(self, base: str) -> None:
        self.base = base

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.base + path, timeout=10, **kwargs)


# What waits in the app's IndexedDB queue: [kind, photo bytes or None], in the order it will be sent.
QUEUED = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open("m");
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const all = open.result.transaction("queue").objectStore("queue").getAll();
    all.onsuccess = () => resolve(all.result.sort((a, b) => a.seq - b.seq)
      .map((x) => [x.kind, x.photo instanceof Blob ? x.photo.size : null]));
  };
})"""


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_offline_report_with_photo_and_visit_arrive_once(empty_db: Engine, tmp_path: Path, artifacts):
    load_events_city(empty_db)
    with transaction(empty_db) as session:
        load_duties(session, [DUTY])
    app = create_app(engine=empty_db, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2),
                     media_settings=MediaSettings(home=tmp_path))  # fmt: skip
    app.state.event_settings = EVENTS
    lon, lat = centre(0)
    picture = tmp_path / "garbage.jpg"
    picture.write_bytes(photo(640, 480, gps=(lon, lat)))
    with live_server(app) as base, sync_playwright() as p:
        server = Remote(base)  # accounts through the real token endpoint of the running server
        sign_in(server, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A)
        dispatcher = sign_in(server, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            phone = browser.new_context(**p.devices["Pixel 5"], locale="zh-CN", permissions=["geolocation"],
                                        geolocation={"longitude": lon, "latitude": lat})  # fmt: skip
            page = phone.new_page()
            page.goto(f"{base}/m")
            assert page.locator("h1").inner_text() == "网格通"
            page.fill("input[name=username]", "worker-a")
            page.fill("input[name=password]", "correct horse battery")
            page.click("#signin-form button")
            page.wait_for_function("document.getElementById('where-grid') && "
                                   "document.getElementById('where-grid').textContent === '网格1'")  # fmt: skip
            page.wait_for_function("document.querySelectorAll('#duties option').length === 2")
            assert "出租房屋走访" in page.locator("#tasks").inner_text()  # never visited: overdue
            assert page.locator("#categories option[value='city_management.garbage']").count() == 1

            phone.set_offline(True)
            page.wait_for_function("document.getElementById('net').textContent === '离线'")
            page.select_option("#categories", "city_management.garbage")
            page.fill("#report-form textarea", "小区门口垃圾堆放")
            page.set_input_files("#report-form input[type=file]", str(picture))
            page.click("#report-form button")
            page.wait_for_function("document.getElementById('pending').dataset.count === '1'")
            page.select_option("#duties", f"rental_check|{GRIDS[0]}")
            page.fill("#visit-form textarea", "3户出租，信息已核对")
            page.click("#visit-form button")
            page.wait_for_function("document.getElementById('pending').dataset.count === '2'")
            page.screenshot(path=str(artifacts / "mobile-offline.png"))
            waiting = page.evaluate(QUEUED)  # the photo's bytes wait in IndexedDB, not in localStorage
            assert waiting == [["report", picture.stat().st_size], ["visit", None]]
            assert page.evaluate("localStorage.getItem('m.queue')") is None
            assert count(empty_db, "events") == count(empty_db, "visits") == 0  # nothing left the phone

            phone.set_offline(False)
            page.wait_for_function("document.getElementById('pending').dataset.count === '0'", timeout=20_000)
            page.reload()  # the app starts again and flushes an empty queue: nothing is sent twice
            page.wait_for_function("document.getElementById('where-grid') !== null")
            page.click("#lang")
            assert page.locator("h1").inner_text() == "Grid worker"
            page.screenshot(path=str(artifacts / "mobile-online.png"))
        finally:
            browser.close()

        queue = requests.get(f"{base}/v1/queue", headers=dispatcher, timeout=10).json()
        reported = [e for e in queue["items"] if e["description"] == "小区门口垃圾堆放"]
        assert len(reported) == 1 and reported[0]["grid_code"] == GRIDS[0] and reported[0]["source"] == "grid_worker"
        photos = requests.get(f"{base}/v1/events/{reported[0]['id']}/photos", headers=dispatcher, timeout=10).json()
        assert len(photos["photos"]) == 1 and photos["photos"][0]["gps_flagged"] is False
    assert count(empty_db, "events") == count(empty_db, "visits") == count(empty_db, "photos") == 1
    with empty_db.connect() as conn:
        visit = conn.execute(text("SELECT duty_code, unit_code, notes FROM visits")).one()
    assert tuple(visit) == ("rental_check", GRIDS[0], "3户出租，信息已核对")
