"""Signing out of the phone app /m on a shared phone (issue 18): the next person finds nothing of the last one.

Worker A loads their tasks (cached), queues a visit offline and signs out; what cannot be sent is named
and lost only when A agrees; the cached answers, the queue and A's keys are gone, offline after a reload
too, and worker B sees none of it. A queue left by an expired session waits for its own worker and is
never sent under anyone else's token. Pixel 5 emulation, the real app on a live server and PostGIS.
"""

from __future__ import annotations

from pathlib import Path

import requests
from playwright.sync_api import BrowserContext, Dialog, Page
from sqlalchemy import Engine, text

from layers.models import Role
from tests.geoservice.events_city import COMMUNITY_A, COMMUNITY_B, GRIDS, centre
from tests.geoservice.signin import sign_in
from tests.geoservice.test_mobile_browser import QUEUED, count
from tests.geoservice.test_mobile_field_browser import PASSWORD, SMALL, Field, field, phone, signed_in, wait_sent

# What the caches of the page's origin hold: {cache name: [path, ...]}.
CACHED = """async () => {
  const out = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    out[name] = (await cache.keys()).map((r) => new URL(r.url).pathname).sort();
  }
  return out;
}"""
SHELL = {"/m", "/static/m/app.js", "/static/m/app.css", "/m/manifest.webmanifest", "/static/m/icon-192.png"}
# An answer of the API as a service worker would keep it, in a cache of its own and beside the shell.
KEEP_ANSWERS = """async () => {
  await navigator.serviceWorker.ready;
  const shell = (await caches.keys()).find((name) => name.startsWith("m-shell"));
  await (await caches.open("m-api")).put("/v1/me/duties", new Response('{"items": ["A"]}'));
  await (await caches.open(shell)).put("/v1/queue", new Response('{"items": ["A"]}'));
}"""


def reported_in_grid_a(f: Field, engine: Engine, description: str) -> int:
    citizen = sign_in(f.server, engine, Role.public, "citizen")
    lon, lat = centre(0)
    answer = requests.post(f"{f.base}/v1/events", headers=citizen, timeout=10,
                           json={"lon": lon, "lat": lat, "category": SMALL, "description": description})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def worker_a_with_a_task(f: Field, engine: Engine, description: str) -> tuple[int, BrowserContext, Page]:
    """Workers A and B exist; a report in A's grid; A signed in on a phone with that task listed (and cached)."""
    sign_in(f.server, engine, Role.grid_worker, "worker-a", region_code=COMMUNITY_A)
    sign_in(f.server, engine, Role.grid_worker, "worker-b", region_code=COMMUNITY_B)
    event_id = reported_in_grid_a(f, engine, description)
    context = phone(f, centre(0))
    page = signed_in(f, context, "worker-a")
    page.locator(f"#tasks li[data-event-id='{event_id}']").wait_for()
    return event_id, context, page


def queue_visit_offline(page: Page, notes: str, pending: int) -> None:
    page.context.set_offline(True)
    page.wait_for_function("document.getElementById('net').textContent === '离线'")
    page.select_option("#duties", f"rental_check|{GRIDS[0]}")
    page.fill("#visit-form textarea", notes)
    page.click("#visit-form button")
    page.wait_for_function(f"document.getElementById('pending').dataset.count === '{pending}'")


def sign_in_here(page: Page, username: str, at: tuple[float, float] = centre(0)) -> None:
    page.context.set_geolocation({"longitude": at[0], "latitude": at[1], "accuracy": 5})
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("#signin-form button")
    page.wait_for_function("document.getElementById('where-grid') !== null")


def signed_out(page: Page) -> None:
    page.wait_for_function("!document.getElementById('signin').hidden && document.getElementById('app').hidden")


def left_behind(page: Page) -> dict:
    """What a curious next user could read on the phone without the app's help."""
    return {
        "local": page.evaluate("Object.keys(localStorage).sort()"),
        "session": page.evaluate("Object.keys(sessionStorage)"),
        "queued": page.evaluate(QUEUED),
        "tasks": page.locator("#tasks li").count(),
    }


def test_sign_out_leaves_nothing_of_the_worker_for_the_next(empty_db: Engine, tmp_path: Path, artifacts):
    with field(empty_db, tmp_path) as f:
        event_id, context, page = worker_a_with_a_task(f, empty_db, "占道经营，堵住了消防通道")
        assert "消防通道" in page.evaluate("localStorage.getItem('m.cache')")
        page.evaluate(KEEP_ANSWERS)
        page.evaluate("sessionStorage.setItem('m.draft', '走访草稿')")
        queue_visit_offline(page, "3户出租，信息已核对", 1)

        questions: list[str] = []

        def answer(dialog: Dialog, agree: bool) -> None:
            questions.append(dialog.message)
            dialog.accept() if agree else dialog.dismiss()

        page.once("dialog", lambda d: answer(d, agree=False))
        page.click("#signout")  # offline: the visit cannot be sent; A is asked, and says no
        assert questions == ["还有 1 条记录未发送，退出后将被删除。仍要退出吗？"]
        assert page.is_visible("#app") and page.get_attribute("#pending", "data-count") == "1"

        page.once("dialog", lambda d: answer(d, agree=True))
        page.click("#signout")  # asked again; yes: signed out, and the visit is gone with the rest
        signed_out(page)
        assert len(questions) == 2
        assert left_behind(page) == {"local": [], "session": [], "queued": [], "tasks": 0}
        cached = page.evaluate(CACHED)
        assert "m-api" not in cached or cached["m-api"] == []
        kept = {path for paths in cached.values() for path in paths}
        assert kept and kept <= SHELL  # the app shell stays (the app still opens offline), no answer of the API
        assert "消防通道" not in page.content()
        page.screenshot(path=str(artifacts / "mobile-signed-out.png"))

        page.reload()  # still offline: the app opens from its shell, with nothing of A in it
        signed_out(page)
        assert page.locator("h1").inner_text() == "网格通"
        assert left_behind(page) == {"local": [], "session": [], "queued": [], "tasks": 0}
        assert "消防通道" not in page.content()

        context.set_offline(False)
        page.wait_for_function("document.getElementById('net').textContent === ''")
        sign_in_here(page, "worker-b", centre(2))  # B, on the same phone
        page.wait_for_function("document.getElementById('where-grid').textContent !== ''")
        assert page.get_attribute("#pending", "data-count") == "0"
        assert page.locator(f"#tasks li[data-event-id='{event_id}']").count() == 0
        assert "消防通道" not in page.content()
        assert page.evaluate(QUEUED) == []
        assert "消防通道" not in (page.evaluate("localStorage.getItem('m.cache')") or "")
    assert count(empty_db, "visits") == 0  # A said to drop it: it was never sent, under A's token or B's


def test_signing_out_online_sends_the_queue_first(empty_db: Engine, tmp_path: Path):
    with field(empty_db, tmp_path) as f:
        sign_in(f.server, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A)
        context = phone(f, centre(0))
        page = signed_in(f, context, "worker-a")
        page.wait_for_function("document.querySelectorAll('#duties option').length > 0")
        queue_visit_offline(page, "2户空置", 1)
        questions: list[str] = []
        page.on("dialog", lambda d: (questions.append(d.message), d.dismiss()))
        context.set_offline(False)
        page.click("#signout")  # back online: what waits is sent before the worker's data goes
        signed_out(page)
        assert questions == []
        assert left_behind(page) == {"local": [], "session": [], "queued": [], "tasks": 0}
    assert count(empty_db, "visits") == 1


def test_a_queue_left_by_an_expired_session_is_its_workers_only(empty_db: Engine, tmp_path: Path):
    with field(empty_db, tmp_path) as f:
        event_id, context, page = worker_a_with_a_task(f, empty_db, "井盖缺失")

        def expire_while_offline(notes: str) -> None:
            """A visit is queued offline; meanwhile A's token stops being accepted (its signature no longer holds)."""
            queue_visit_offline(page, notes, 1)
            page.evaluate("localStorage.setItem('m.token', localStorage.getItem('m.token') + 'x')")
            context.set_offline(False)
            signed_out(page)  # the server answered 401: the app asks for a sign-in, showing nothing meanwhile
            assert page.locator("#tasks li").count() == 0
            assert page.get_attribute("#pending", "data-count") == "0"

        expire_while_offline("第一次走访")
        assert count(empty_db, "visits") == 0
        sign_in_here(page, "worker-a")  # the same worker again: their visit is still theirs, and is sent
        wait_sent(page)
        assert count(empty_db, "visits") == 1

        expire_while_offline("第二次走访")
        sign_in_here(page, "worker-b", centre(2))  # someone else: A's queue and cache are gone before B sees the page
        page.wait_for_function("document.getElementById('where-grid').textContent !== ''")
        assert page.get_attribute("#pending", "data-count") == "0"
        assert page.evaluate(QUEUED) == []
        assert page.locator(f"#tasks li[data-event-id='{event_id}']").count() == 0
        assert "井盖缺失" not in (page.evaluate("localStorage.getItem('m.cache')") or "")
    with empty_db.connect() as conn:
        notes = conn.execute(text("SELECT username, notes FROM visits")).all()
    assert [tuple(n) for n in notes] == [("worker-a", "第一次走访")]  # the second never left the phone
