"""Photos, really stored (issue 18): checked from the bytes, upright, thumbnailed, GPS compared, served in scope."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.media.settings import MediaSettings
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, COMMUNITY_A, EVENTS, TOWN_A, TOWN_B, centre, load_events_city
from tests.geoservice.photo_files import noise_png, photo
from tests.geoservice.signin import sign_in

METRE_LAT = 1 / 111_000  # roughly one metre of latitude, only to place test photos near or far


@pytest.fixture
def media(tmp_path: Path) -> MediaSettings:
    return MediaSettings(home=tmp_path, photo_max_bytes=300_000)


@pytest.fixture
def client(empty_db: Engine, media: MediaSettings) -> Iterator[TestClient]:
    load_events_city(empty_db)
    app = create_app(engine=empty_db, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2),
                     media_settings=media)  # fmt: skip
    app.state.event_settings = EVENTS
    with TestClient(app) as client:
        yield client


@pytest.fixture
def people(client: TestClient, empty_db: Engine) -> dict[str, dict[str, str]]:
    return {
        "worker": sign_in(client, empty_db, Role.grid_worker, region_code=COMMUNITY_A),
        "dispatcher": sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A),
        "dispatcher_b": sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=TOWN_B),
        "handler": sign_in(client, empty_db, Role.handler, department_code="urban_management"),
        "police": sign_in(client, empty_db, Role.handler, "police-handler", department_code="police"),
        "supervisor": sign_in(client, empty_db, Role.supervisor),
        "planner": sign_in(client, empty_db, Role.planner),
        "citizen": sign_in(client, empty_db, Role.public, "citizen"),
        "other_citizen": sign_in(client, empty_db, Role.public, "neighbour"),
    }


def report(client: TestClient, auth: dict[str, str], grid: int = 0) -> dict:
    lon, lat = centre(grid)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾乱堆在路口"}
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def upload(client: TestClient, auth: dict[str, str], event_id: int, data: bytes, name: str = "p.jpg", **form):
    files = {"file": (name, data, "image/jpeg")}
    return client.post(f"/v1/events/{event_id}/photos", files=files, data=form, headers=auth)


def stored_files(media: MediaSettings) -> list[str]:
    root = media.local_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def geodesic_m(engine: Engine, a: tuple[float, float], b: tuple[float, float]) -> float:
    """The distance as PostGIS measures it on the spheroid: the independent check of the service's."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT ST_Distance(ST_MakePoint(:x1, :y1)::geography, ST_MakePoint(:x2, :y2)::geography, true)"),
            {"x1": a[0], "y1": a[1], "x2": b[0], "y2": b[1]},
        ).scalar_one()


def test_a_phone_photo_is_stored_upright_with_a_thumbnail_and_its_gps_checked(
    client: TestClient, people: dict, media: MediaSettings, empty_db: Engine
):
    event = report(client, people["worker"])
    lon, lat = event["lon"], event["lat"] + 60 * METRE_LAT  # taken 60 m north of the reported point
    data = photo(800, 400, orientation=6, gps=(lon, lat))
    answer = upload(client, people["worker"], event["id"], data, caption="  路口  垃圾 ")
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert (stored["width"], stored["height"], stored["exif_orientation"]) == (400, 800, 6)
    assert stored["content_type"] == "image/jpeg" and stored["caption"] == "路口 垃圾"
    assert stored["gps"]["distance_m"] == pytest.approx(geodesic_m(empty_db, (lon, lat), centre(0)), abs=0.5)
    assert 50 < stored["gps"]["distance_m"] < 70 and stored["gps_flagged"] is False
    assert datetime.fromisoformat(stored["taken_at"]) == datetime.fromisoformat("2026-12-05T16:30:00+08:00")

    shown = client.get(stored["url"], headers=people["dispatcher"])
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(shown.content))
    assert picture.size == (400, 800)  # orientation 6: turned a quarter clockwise
    assert picture.getpixel((200, 100))[0] > 200 and picture.getpixel((200, 700))[2] > 200  # red above, blue below
    assert not picture.getexif()  # no position handed to every viewer
    thumb = client.get(stored["thumb_url"], headers=people["dispatcher"])
    small = Image.open(io.BytesIO(thumb.content))
    assert thumb.headers["content-type"] == "image/jpeg" and small.size == (160, 320)

    again = upload(client, people["worker"], event["id"], data)  # the offline queue sends it once more
    assert again.status_code == 200 and again.json()["id"] == stored["id"]
    listed = client.get(f"/v1/events/{event['id']}/photos", headers=people["supervisor"]).json()["photos"]
    assert [p["id"] for p in listed] == [stored["id"]]
    assert len(stored_files(media)) == 3 and not any(".staged/" in f and f.endswith(".part") for f in
                                                     stored_files(media))  # fmt: skip


def test_a_photo_taken_far_from_the_event_is_flagged(client: TestClient, people: dict, empty_db: Engine):
    event = report(client, people["worker"])
    far = (event["lon"], event["lat"] + 250 * METRE_LAT)
    body = upload(client, people["worker"], event["id"], photo(gps=far)).json()
    assert body["gps_flagged"] is True and body["gps"]["distance_m"] > 200
    assert body["gps"]["distance_m"] == pytest.approx(geodesic_m(empty_db, far, centre(0)), abs=0.5)
    without = upload(client, people["worker"], event["id"], photo(seed=1)).json()
    assert without["gps"] is None and without["gps_flagged"] is False


def test_the_type_comes_from_the_bytes_and_the_size_is_limited(client: TestClient, people: dict, media: MediaSettings):
    event = report(client, people["worker"])
    worker = people["worker"]
    for data in (b"GIF89a not really", photo(fmt="GIF"), b"%PDF-1.4 pretend", photo()[:200], b""):
        refused = upload(client, worker, event["id"], data)
        assert refused.status_code == 415 and refused.headers["content-type"] == "application/problem+json", data[:8]
        assert refused.json()["title"] == "Not a photo"
    big = noise_png(400)
    assert len(big) > media.photo_max_bytes
    too_large = upload(client, worker, event["id"], big, "big.png")
    assert too_large.status_code == 413 and str(media.photo_max_bytes) in too_large.json()["detail"]
    png = upload(client, worker, event["id"], photo(fmt="PNG", mode="RGBA"), "a.png")
    webp = upload(client, worker, event["id"], photo(fmt="WEBP", seed=3), "a.webp")
    assert png.status_code == webp.status_code == 201
    assert (png.json()["content_type"], webp.json()["content_type"]) == ("image/png", "image/webp")
    assert client.get(png.json()["thumb_url"], headers=worker).headers["content-type"] == "image/jpeg"
    assert len(stored_files(media)) == 6  # two photos, three files each; nothing of the refused uploads
    assert client.post(f"/v1/events/{event['id']}/photos", headers=worker).status_code == 422  # no file at all


def test_a_photo_is_seen_only_by_whoever_may_see_its_event(client: TestClient, people: dict):
    event = report(client, people["citizen"])
    stored = upload(client, people["citizen"], event["id"], photo()).json()
    for who in ("citizen", "worker", "dispatcher", "supervisor", "handler"):  # handler: the routed department
        assert client.get(stored["url"], headers=people[who]).status_code == 200, who
        assert client.get(stored["thumb_url"], headers=people[who]).status_code == 200, who
    for who in ("other_citizen", "dispatcher_b", "police"):
        for url in (stored["url"], stored["thumb_url"], f"/v1/events/{event['id']}/photos"):
            assert client.get(url, headers=people[who]).status_code == 404, (who, url)
        assert upload(client, people[who], event["id"], photo(seed=9)).status_code == 404, who
    assert client.get(stored["url"], headers=people["planner"]).status_code == 403
    assert client.get(stored["url"]).status_code == 401
    assert upload(client, people["supervisor"], event["id"], photo(seed=9)).status_code == 403  # read-only
    assert client.get("/v1/photos/999999", headers=people["supervisor"]).status_code == 404


def test_a_browser_asks_again_before_showing_a_kept_photo(client: TestClient, people: dict):
    """A shared phone's cache must not show one user's photo to the next: kept copies are revalidated."""
    event = report(client, people["citizen"])
    stored = upload(client, people["citizen"], event["id"], photo()).json()
    for url in (stored["url"], stored["thumb_url"]):
        first = client.get(url, headers=people["worker"])
        assert first.status_code == 200 and first.content
        assert first.headers["cache-control"] == "private, no-cache" and first.headers["vary"] == "Authorization"
        kept = {"If-None-Match": first.headers["etag"]}
        again = client.get(url, headers={**people["worker"], **kept})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == first.headers["etag"]
        assert client.get(url, headers={**people["other_citizen"], **kept}).status_code == 404  # asked, and refused
        stale = client.get(url, headers={**people["worker"], "If-None-Match": '"another"'})
        assert stale.status_code == 200 and stale.content == first.content


def test_a_failed_commit_leaves_no_file_and_a_lost_file_is_restored_by_a_retry(
    client: TestClient, people: dict, media: MediaSettings, empty_db: Engine
):
    event = report(client, people["worker"])
    with empty_db.begin() as conn:  # the commit itself fails, after the files were staged
        conn.execute(text(
            "CREATE FUNCTION refuse_photo() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused at commit' USING ERRCODE = '40001'; END $$"
        ))  # fmt: skip
        conn.execute(text(
            "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON photos DEFERRABLE INITIALLY DEFERRED "
            "FOR EACH ROW EXECUTE FUNCTION refuse_photo()"
        ))  # fmt: skip
    data = photo(gps=(event["lon"], event["lat"]))
    failed = upload(client, people["worker"], event["id"], data)
    assert failed.status_code == 503 and "nothing was stored" in failed.json()["detail"]
    with empty_db.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM photos")).scalar_one() == 0
        conn.execute(text("DROP TRIGGER refuse ON photos"))
    assert stored_files(media) == []  # neither published nor left staged

    stored = upload(client, people["worker"], event["id"], data)
    assert stored.status_code == 201 and len(stored_files(media)) == 3
    display = next(media.local_dir.glob("display/*/*"))
    display.unlink()  # as if the process died between the commit and the rename
    lost = client.get(stored.json()["url"], headers=people["worker"])
    assert lost.status_code == 404 and lost.json()["title"] == "Photo file missing"
    retried = upload(client, people["worker"], event["id"], data)
    assert retried.status_code == 200 and retried.json()["id"] == stored.json()["id"]
    assert client.get(stored.json()["url"], headers=people["worker"]).status_code == 200
