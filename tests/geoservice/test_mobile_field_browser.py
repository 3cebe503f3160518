"""The phone app /m in Chromium (issue 18), the field parts: a worker accepts, handles and feeds back their
event (the feedback made offline arrives once), sees their supervision orders, sees their grid on a small map
drawn from local assets only, records a patrol partly offline, and records an inspection from a key place's page.
Pixel 5 emulation, emulated geolocation, the real app on a live server and PostGIS."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Route, sync_playwright
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.field.duties import load_duties
from geoservice.infra.database import transaction
from geoservice.media.settings import MediaSettings
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, COMMUNITY_A, COMMUNITY_B, EVENTS, GRIDS, centre, load_events_city
from tests.geoservice.photo_files import photo
from tests.geoservice.signin import sign_in
from tests.geoservice.test_mobile_browser import Remote, count
from tests.webmap.failed_pages import keep_the_pages
from tests.webmap.live_server import live_server
from tests.webmap.test_onemap_browser import CHROMIUM_ARGS

SMALL = "city_management.stall"  # a small matter (小事不出格): the grid worker handles it alone
RENTAL = {"code": "rental_check", "name": "出租房屋走访", "level": "grid", "every_days": "7", "region_code": "",
          "description": ""}  # fmt: skip
INSPECTION = {"code": "key_place_check", "name": "重点场所检查", "level": "community", "every_days": "30",
              "region_code": "", "description": ""}  # fmt: skip
PASSWORD = "correct horse battery"


@dataclass
class Field:
    base: str
    server: Remote
    browser: Browser
    devices: dict


@contextmanager
def field(engine: Engine, tmp_path: Path) -> Iterator[Field]:
    """The events city with two duties, the app on a live server, and Chromium."""
    load_events_city(engine)
    with transaction(engine) as session:
        load_duties(session, [RENTAL, INSPECTION])
        session.execute(text("UPDATE categories SET small_matter = true WHERE code = :c"), {"c": SMALL})
    app = create_app(engine=engine, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2),
                     media_settings=MediaSettings(home=tmp_path))  # fmt: skip
    app.state.event_settings = EVENTS
    with live_server(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield Field(base, Remote(base), browser, p.devices)
        except BaseException:
            keep_the_pages(browser)
            raise
        finally:
            browser.close()


def phone(f: Field, at: tuple[float, float]) -> BrowserContext:
    lon, lat = at
    return f.browser.new_context(**f.devices["Pixel 5"], locale="zh-CN", permissions=["geolocation"],
                                 geolocation={"longitude": lon, "latitude": lat, "accuracy": 5})  # fmt: skip


def signed_in(f: Field, context: BrowserContext, username: str, path: str = "/m") -> Page:
    """The worker signs in on the phone; the app has placed them (where-am-I answered)."""
    page = context.new_page()
    page.goto(f"{f.base}{path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("#signin-form button")
    page.wait_for_function("document.getElementById('where-grid') !== null")
    return page


def wait_sent(page: Page) -> None:
    page.wait_for_function("document.getElementById('pending').dataset.count === '0'", timeout=20_000)


def status_of(engine: Engine, event_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT status FROM events WHERE id = :id"), {"id": event_id}).scalar_one()


def lose_answers(page: Page, pattern: str) -> None:
    """The server gets the request and answers, the phone never hears it (a network that drops the answer)."""

    def lose(route: Route) -> None:
        route.fetch()
        route.abort()

    page.route(pattern, lose)


def resend(page: Page, context: BrowserContext, pattern: str) -> None:
    """After a lost answer: the item waits; the network comes back, and the phone sends it again."""
    page.wait_for_function("document.getElementById('status').textContent.startsWith('发送失败')")
    assert page.get_attribute("#pending", "data-count") == "1"
    page.unroute(pattern)
    context.set_offline(True)
    context.set_offline(False)
    wait_sent(page)


def feed_back_offline(page: Page, task: Locator, button: str, note: str, picture: Path) -> None:
    """The network gone, a feedback with a note and a photo sent from the task's card (so: queued)."""
    page.context.set_offline(True)
    page.wait_for_function("document.getElementById('net').textContent === '离线'")
    task.locator(button).click()
    task.locator("textarea[name=note]").fill(note)
    task.locator("input[name=photo]").set_input_files(str(picture))
    task.locator("form button").click()


def log_of(engine: Engine, event_id: int, action: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT actor, note FROM event_log WHERE event_id = :id "
                                                    "AND action = :a ORDER BY id"), {"id": event_id, "a": action})]


def test_my_tasks_accept_start_and_feed_back_offline_once(empty_db: Engine, tmp_path: Path, artifacts):
    picture = tmp_path / "after.jpg"
    picture.write_bytes(photo(640, 480, gps=centre(0)))
    with field(empty_db, tmp_path) as f:
        sign_in(f.server, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A)
        citizen = sign_in(f.server, empty_db, Role.public, "citizen")
        supervisor = sign_in(f.server, empty_db, Role.supervisor, "inspector")
        lon, lat = centre(0)
        reported = requests.post(f"{f.base}/v1/events", headers=citizen, timeout=10, json={
            "lon": lon, "lat": lat, "category": SMALL, "description": "占道经营"}).json()  # fmt: skip
        big = requests.post(f"{f.base}/v1/events", headers=citizen, timeout=10, json={
            "lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾堆积成山"}).json()  # fmt: skip
        order = requests.post(f"{f.base}/v1/events/{reported['id']}/supervision", headers=supervisor, timeout=10,
                              json={"instruction": "今天之内清理占道摊点", "reply_hours": 24})  # fmt: skip
        assert order.status_code == 201, order.text
        with empty_db.connect() as conn:
            stall = conn.execute(text("SELECT name FROM categories WHERE code = :c"), {"c": SMALL}).scalar_one()

        context = phone(f, centre(0))
        page = signed_in(f, context, "worker-a")
        task = page.locator(f"#tasks li[data-event-id='{reported['id']}']")
        task.locator("button[data-act=accept]").wait_for()
        assert f"#{reported['id']} {stall} · 已上报" in task.inner_text()  # Chinese names of category and state
        assert task.locator("button[data-act=accept]").inner_text() == "受理"
        assert "今天之内清理占道摊点" in page.locator("#orders").inner_text()  # the order waiting for my reply

        task.locator("button[data-act=accept]").click()
        task.locator("button[data-act=start]").wait_for()
        wait_sent(page)
        assert status_of(empty_db, reported["id"]) == "accepted"
        assert task.locator("button[data-act=start]").inner_text() == "开始处置"
        task.locator("button[data-act=start]").click()
        task.locator("button[data-act=feedback]").wait_for()
        wait_sent(page)
        assert status_of(empty_db, reported["id"]) == "handling"

        feed_back_offline(page, task, "button[data-act=feedback]", "摊点已清理，已劝离", picture)
        page.wait_for_function("document.getElementById('pending').dataset.count === '1'")
        order_li = page.locator(f"#orders li[data-order='{order.json()['id']}']")  # the reply, offline too
        order_li.locator("button[data-reply]").click()
        order_li.locator("textarea[name=note]").fill("已安排今天下午清理")
        order_li.locator("form button").click()
        page.wait_for_function("document.getElementById('pending').dataset.count === '2'")
        assert order_li.get_attribute("data-replied") == "1" and "已回复: 已安排今天下午清理" in order_li.inner_text()
        page.wait_for_function(f"document.querySelector(\"#tasks li[data-event-id='{reported['id']}']\")"
                               ".dataset.status === 'handled'")  # fmt: skip
        assert task.locator("button").count() == 0  # nothing more to do here
        page.screenshot(path=str(artifacts / "mobile-tasks-offline.png"))
        assert status_of(empty_db, reported["id"]) == "handling"  # nothing left the phone

        context.set_offline(False)
        wait_sent(page)
        assert log_of(empty_db, reported["id"], "supervision_reply") == [("worker-a", "已安排今天下午清理")]
        # The refresh after the send drops the answered order from the list; tapping before it lands could
        # hit a list that is still moving (the page shortens under the finger).
        order_li.wait_for(state="detached")

        # Escalate (上报升级) a matter too big for the grid; the server's answer is lost, the phone sends it again:
        # the row_version it was taken on makes the resend a 409, the phone finds the event already a level up.
        escalated = page.locator(f"#tasks li[data-event-id='{big['id']}']")
        assert escalated.locator("button[data-act=escalate]").inner_text() == "上报升级"
        lose_answers(page, f"**/v1/events/{big['id']}/transitions")
        escalated.locator("button[data-act=escalate]").click()
        escalated.locator("textarea[name=note]").fill("垃圾量大，需镇里调车清运")
        escalated.locator("form button").click()
        resend(page, context, f"**/v1/events/{big['id']}/transitions")
        assert log_of(empty_db, big["id"], "escalate") == [("worker-a", "垃圾量大，需镇里调车清运")]
        with empty_db.connect() as conn:
            level = conn.execute(text("SELECT escalation_level FROM events WHERE id = :id"), {"id": big["id"]}).scalar()
        assert level == "community"
        page.reload()  # starts again and flushes an empty queue: the feedback is not sent twice
        page.wait_for_function("document.getElementById('where-grid') !== null")
        assert "已处置" in page.locator(f"#tasks li[data-event-id='{reported['id']}']").inner_text()
        page.click("#lang")
        assert page.locator("#tasks").locator("xpath=following-sibling::h3").inner_text() == "Supervision orders"
        page.locator(f"#tasks li[data-event-id='{big['id']}']").wait_for(state="detached")  # the community's now
        context.close()

        co_task_on_the_phone(f, empty_db, picture, artifacts)

    assert status_of(empty_db, reported["id"]) == "handled"
    with empty_db.connect() as conn:
        steps = conn.execute(text("SELECT action, actor, note FROM event_log WHERE event_id = :id AND action IN "
                                  "('accept', 'start', 'feedback') ORDER BY id"), {"id": reported["id"]}).all()  # fmt: skip
    assert [tuple(s) for s in steps] == [("accept", "worker-a", ""), ("start", "worker-a", ""),
                                         ("feedback", "worker-a", "摊点已清理，已劝离")]  # fmt: skip
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM photos WHERE event_id = :id"), {"id": reported["id"]}).scalar() == 1
        orders = conn.execute(text("SELECT replied_by, reply FROM supervision_orders")).all()
    assert [tuple(o) for o in orders] == [("worker-a", "已安排今天下午清理")]  # one order, its one reply


def co_task_on_the_phone(f: Field, engine: Engine, picture: Path, artifacts: Path) -> None:
    """A police handler's co-task (联合处置) on /m: started online, fed back offline, its answer lost, sent once."""
    dispatcher = sign_in(f.server, engine, Role.dispatcher, "disp-a", region_code=COMMUNITY_A)
    sign_in(f.server, engine, Role.handler, "police-h", department_code="police")
    lon, lat = centre(0)
    event = requests.post(f"{f.base}/v1/events", headers=dispatcher, timeout=10, json={
        "lon": lon, "lat": lat, "category": "city_management.garbage", "description": "占道堆物，阻碍通行"}).json()  # fmt: skip
    for body in ({"action": "accept"}, {"action": "dispatch", "department_code": "urban_management",
                                        "co_departments": ["police"]}):  # fmt: skip
        answer = requests.post(f"{f.base}/v1/events/{event['id']}/transitions", headers=dispatcher, timeout=10,
                               json={**body, "expected_version": event["row_version"]})  # fmt: skip
        assert answer.status_code == 200, answer.text
        event = answer.json()
    with engine.connect() as conn:
        garbage = conn.execute(text("SELECT name FROM categories WHERE code = 'city_management.garbage'")).scalar_one()

    context = phone(f, centre(0))
    page = signed_in(f, context, "police-h")
    task = page.locator(f"#tasks li[data-cotask-event='{event['id']}']")
    task.locator("button[data-co=start]").wait_for()
    assert f"联合处置 #{event['id']} {garbage} · 甲村 网格1 · 待处置 · 到期 " in task.inner_text()
    assert task.get_attribute("data-department") == "police"
    page.click("#lang")
    assert task.inner_text().startswith(f"Co-task #{event['id']} ") and "to start" in task.inner_text()
    assert task.locator("button[data-co=start]").inner_text() == "Start handling"
    page.click("#lang")
    task.locator("button[data-co=start]").click()
    task.locator("button[data-co=feedback]").wait_for()
    wait_sent(page)

    feed_back_offline(page, task, "button[data-co=feedback]", "已派警力维持秩序", picture)
    page.wait_for_function(f"document.querySelector(\"#tasks li[data-cotask-event='{event['id']}']\")"
                           ".dataset.status === 'fed_back'")  # fmt: skip
    assert "已反馈" in task.inner_text() and task.locator("button").count() == 0
    page.screenshot(path=str(artifacts / "mobile-cotask-offline.png"))
    pattern = f"**/v1/events/{event['id']}/tasks/police/feedback"
    lose_answers(page, pattern)
    context.set_offline(False)
    resend(page, context, pattern)  # the task was fed back, the event left police's scope: the stored answer
    context.close()

    with engine.connect() as conn:
        tasks = conn.execute(text("SELECT status, fed_back_by, feedback FROM event_tasks WHERE event_id = :id"),
                             {"id": event["id"]}).all()  # fmt: skip
        photos = conn.execute(text("SELECT count(*) FROM photos WHERE event_id = :id"), {"id": event["id"]}).scalar()
    assert [tuple(t) for t in tasks] == [("fed_back", "police-h", "已派警力维持秩序")]
    assert [a for a, _ in log_of(engine, event["id"], "co_task_start")] == ["police-h"]
    assert log_of(engine, event["id"], "co_task_feedback") == [("police-h", "已派警力维持秩序")]
    assert photos == 1


IN_FILL = """() => {
  const path = document.getElementById("grid-outline"), me = document.getElementById("me");
  const point = path.ownerSVGElement.createSVGPoint();
  point.x = Number(me.getAttribute("cx")); point.y = Number(me.getAttribute("cy"));
  return path.isPointInFill(point);
}"""


def test_where_am_i_draws_my_grid_and_my_position_from_local_assets(empty_db: Engine, tmp_path: Path, artifacts):
    with field(empty_db, tmp_path) as f:
        sign_in(f.server, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A)
        sign_in(f.server, empty_db, Role.grid_worker, "worker-b", region_code=COMMUNITY_B)
        context = phone(f, centre(0))
        page = context.new_page()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url))
        page.goto(f"{f.base}/m")
        page.fill("input[name=username]", "worker-a")
        page.fill("input[name=password]", PASSWORD)
        page.click("#signin-form button")
        page.locator("#minimap #grid-outline").wait_for()
        assert page.locator("#where-grid").inner_text() == "网格1"
        assert page.evaluate(IN_FILL) is True  # my dot is inside my grid's outline
        outline = page.get_attribute("#grid-outline", "d")
        assert outline and outline.startswith("M") and outline.endswith("Z")
        assert page.get_attribute("#grid-outline", "data-grid") == GRIDS[0]
        title = page.locator("header h1").bounding_box()
        assert title and title["width"] > 2 * title["height"]  # the app's name on one line, not a column
        page.screenshot(path=str(artifacts / "mobile-minimap.png"))

        lon, lat = centre(1)
        context.set_geolocation({"longitude": lon + 0.003, "latitude": lat + 0.002, "accuracy": 5})
        page.click("#locate")
        page.wait_for_function("document.getElementById('where-grid').textContent === '网格2'")
        page.wait_for_function(f"document.getElementById('grid-outline').dataset.grid === '{GRIDS[1]}'")
        assert page.evaluate(IN_FILL) is True
        me = page.locator("#me")
        assert float(me.get_attribute("cx")) > 150 and float(me.get_attribute("cy")) < 100  # north-east of centre
        assert asked and all(url.startswith(f.base) for url in asked), [u for u in asked if not u.startswith(f.base)]
        context.close()

        # Standing in a grid of another community: where-am-I answers, the outline is not theirs to see.
        other = phone(f, centre(0))
        page = signed_in(f, other, "worker-b")
        assert page.locator("#where-grid").inner_text() == "网格1"
        page.wait_for_function("localStorage.getItem('m.cache').includes('\"gridShape\":null')")
        assert page.locator("#minimap").is_hidden() and page.locator("#grid-outline").count() == 0
        other.close()


def track_points(page: Page) -> int:
    return len((page.get_attribute("#track", "points") or "").split())


def test_patrol_recorded_partly_offline_arrives_whole(empty_db: Engine, tmp_path: Path, artifacts):
    lon, lat = centre(0)
    steps = [(lon - 0.004 + 0.0005 * k, lat) for k in range(16)]  # eastwards, ~48 m a step
    with field(empty_db, tmp_path) as f:
        sign_in(f.server, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A)
        worker = sign_in(f.server, empty_db, Role.grid_worker, "worker-a2", region_code=COMMUNITY_A)
        context = phone(f, steps[0])
        page = signed_in(f, context, "worker-a")
        page.locator("#minimap #grid-outline").wait_for()
        page.click("#patrol-start")
        page.wait_for_function("document.getElementById('patrol-stats').textContent.startsWith('巡逻中')")
        wait_sent(page)
        assert count(empty_db, "patrols") == 1
        page.wait_for_function("document.getElementById('patrol-stats').dataset.count === '1'")

        def walk(k: int) -> None:
            x, y = steps[k]
            context.set_geolocation({"longitude": x, "latitude": y, "accuracy": 5})
            page.wait_for_function(f"document.getElementById('patrol-stats').dataset.count === '{k + 1}'")

        for k in range(1, 11):  # the tenth fix makes a batch, sent at once
            walk(k)
        assert track_points(page) == 11  # the track so far on the small map, one vertex a fix
        wait_sent(page)
        assert count(empty_db, "patrol_points") == 10
        context.set_offline(True)
        for k in range(11, len(steps)):
            walk(k)
        stats = page.locator("#patrol-stats").inner_text()
        shown_m = int(page.get_attribute("#patrol-stats", "data-distance") or 0)
        assert track_points(page) == len(steps)
        page.screenshot(path=str(artifacts / "mobile-patrol-track.png"))
        xs = [float(p.split(",")[0]) for p in (page.get_attribute("#track", "points") or "").split()]
        assert xs == sorted(xs) and xs[-1] > xs[0]  # eastwards, as walked
        assert re.search(r"^巡逻中 \d\d:\d\d:\d\d · 0\.\d\d 公里 · 16 个定位点$", stats), stats
        page.click("#patrol-stop")
        page.wait_for_function("document.getElementById('pending').dataset.count === '2'")  # last fixes, the stop
        assert page.locator("#patrol-stats").inner_text() == "巡逻已结束"
        assert page.locator("#track").count() == 0  # the track goes with the patrol
        page.screenshot(path=str(artifacts / "mobile-patrol-offline.png"))
        assert count(empty_db, "patrol_points") == 10  # nothing left the phone while offline

        context.set_offline(False)
        wait_sent(page)
        with empty_db.connect() as conn:
            patrol_id, stopped = conn.execute(text("SELECT id, stopped_at FROM patrols")).one()
        assert stopped is not None
        answer = requests.get(f"{f.base}/v1/patrols/{patrol_id}", headers=worker, timeout=10)
        assert answer.status_code in (403, 404)  # another worker's patrol is not theirs to read
        context.close()

    assert count(empty_db, "patrol_points") == len(steps)  # every fix once
    with empty_db.connect() as conn:
        length = conn.execute(text("SELECT length_m FROM patrols")).scalar_one()
    assert abs(length - shown_m) <= 0.01 * length  # what the phone showed is what the server measured


def test_inspection_recorded_from_the_place_page(empty_db: Engine, tmp_path: Path, artifacts):
    lon, lat = centre(0)
    with field(empty_db, tmp_path) as f:
        with empty_db.begin() as conn:
            conn.execute(
                text("INSERT INTO key_places (code, name, type, geom, risk_level, inspection_cycle_days) VALUES "
                     "('KP-001', '平安超市', 'mall', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'medium', 14)"),
                {"lon": lon + 0.001, "lat": lat},
            )  # fmt: skip
        sign_in(f.server, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A)
        other = sign_in(f.server, empty_db, Role.grid_worker, "worker-b", region_code=COMMUNITY_B)
        mine = requests.get(f"{f.base}/v1/me/places/KP-001", headers=other, timeout=10).json()
        assert mine["responsible"] is False and mine["inspection"] is None and mine["grid"]["code"] == GRIDS[0]

        anyone = f.browser.new_context(**f.devices["Pixel 5"], locale="zh-CN")
        page = anyone.new_page()
        page.goto(f"{f.base}/p/KP-001")
        assert page.locator("h1").inner_text() == "平安超市"
        assert page.locator("#report button").is_visible()  # anyone may report a problem here
        assert page.locator("#inspect").is_hidden()
        anyone.close()

        context = phone(f, (lon + 0.001, lat))
        page = signed_in(f, context, "worker-a")
        page.goto(f"{f.base}/p/KP-001")  # the code on the wall, scanned with the same phone
        page.locator("#inspect-link").wait_for()
        assert page.locator("#inspect-due").inner_text() == "重点场所检查 · 到期 从未巡查"
        assert page.locator("#report button").is_visible()
        page.click("#inspect-link")
        page.wait_for_url(f"{f.base}/m?place=KP-001")
        page.locator("#visit-place").wait_for()
        assert page.locator("#visit-place").inner_text().startswith("巡查场所: 平安超市")
        assert page.input_value("#duties") == f"key_place_check|{COMMUNITY_A}|KP-001"
        page.fill("#visit-form textarea", "消防通道畅通，灭火器在有效期内")
        page.click("#visit-form button")
        wait_sent(page)
        page.screenshot(path=str(artifacts / "mobile-inspection.png"))

        page.goto(f"{f.base}/p/KP-001")
        page.locator("#inspect-link").wait_for()
        assert re.fullmatch(r"重点场所检查 · 到期 \d{4}/\d{1,2}/\d{1,2} \d\d:\d\d", page.locator("#inspect-due").inner_text())
        context.close()

    with empty_db.connect() as conn:
        visits = conn.execute(text("SELECT duty_code, unit_code, place_code, username, notes FROM visits")).all()
    assert [tuple(v) for v in visits] == [("key_place_check", COMMUNITY_A, "KP-001", "worker-a",
                                          "消防通道畅通，灭火器在有效期内")]  # fmt: skip
