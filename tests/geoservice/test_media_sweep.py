"""Staged photo files nobody attached are removed by themselves (issue 18): by the server's periodic sweep and
by ``geoservice media sweep``; a fresh staged file (an upload in progress) and every attached photo stay.

Files are aged by their modification time, which is what the local store reads; the S3 store is checked
against a real S3 endpoint (moto's server, as in test_media_s3)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from geoservice.app import create_app
from geoservice.cli import app as cli
from geoservice.events.sweep import PeriodicSweep
from geoservice.media.settings import MediaSettings
from geoservice.media.store import STAGED, LocalStore, open_store
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, COMMUNITY_A, EVENTS, centre, load_events_city
from tests.geoservice.photo_files import photo
from tests.geoservice.signin import sign_in
from tests.geoservice.test_media_s3 import s3_endpoint, s3_settings  # noqa: F401 (the module's S3 server)

DAY = 86400


@dataclass
class Uploaded:
    """A photo attached to an event through the API, and who may read it."""

    url: str
    thumb_url: str
    auth: dict[str, str]


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def staged(root: Path) -> set[str]:
    folder = root / STAGED
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def attach_one(client: TestClient, engine: Engine) -> Uploaded:
    worker = sign_in(client, engine, Role.grid_worker, region_code=COMMUNITY_A)
    lon, lat = centre(0)
    event = client.post("/v1/events", headers=worker, json={
        "lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾乱堆在路口"})  # fmt: skip
    assert event.status_code == 201, event.text
    answer = client.post(f"/v1/events/{event.json()['id']}/photos", headers=worker,
                         files={"file": ("a.jpg", photo(640, 480, gps=(lon, lat)), "image/jpeg")})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return Uploaded(answer.json()["url"], answer.json()["thumb_url"], worker)


def still_served(client: TestClient, uploaded: Uploaded) -> bool:
    return all(client.get(u, headers=uploaded.auth).status_code == 200 for u in (uploaded.url, uploaded.thumb_url))


def app_for(engine: Engine, home: Path, sweep_s: float = 0) -> FastAPI:
    app = create_app(engine=engine, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2),
                     media_settings=MediaSettings(home=home))  # fmt: skip
    app.state.event_settings = EVENTS.model_copy(update={"event_sweep_s": sweep_s})
    return app


@pytest.fixture
def city(empty_db: Engine) -> Engine:
    load_events_city(empty_db)
    return empty_db


@pytest.fixture
def client(city: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app_for(city, tmp_path)) as client:
        yield client


def old_and_new_staged(store: LocalStore) -> tuple[str, str]:
    """A crash's leftover from two days ago, and the files of an upload under way now."""
    old, new = store.stage(b"left behind by a crash"), store.stage(b"an upload in progress")
    age(store.root / STAGED / old, 2 * DAY)
    return old, new


def age_attached(root: Path) -> None:
    """Attached files as old as the leftover: age alone must not remove a photo someone attached."""
    for path in root.rglob("*"):
        if path.is_file() and STAGED not in path.parts:
            age(path, 3 * DAY)


def test_the_periodic_sweep_removes_old_staged_files_and_keeps_the_rest(client: TestClient, city: Engine):
    uploaded = attach_one(client, city)
    store: LocalStore = client.app.state.media_store
    old, new = old_and_new_staged(store)
    age_attached(store.root)
    sweep = PeriodicSweep(city, 60, EVENTS, media=store, staged_max_age_s=DAY)
    sweep.sweep_once()
    assert staged(store.root) == {new}
    assert still_served(client, uploaded)
    sweep.sweep_once()  # again: nothing more to remove, nothing else touched
    assert staged(store.root) == {new}
    assert still_served(client, uploaded)


def test_the_server_sweeps_staged_files_by_itself(city: Engine, tmp_path: Path):
    store = LocalStore(MediaSettings(home=tmp_path).local_dir)
    old, new = old_and_new_staged(store)
    with TestClient(app_for(city, tmp_path, sweep_s=0.1)) as client:  # the server's own loop, every 0.1 s
        deadline = time.monotonic() + 60
        while old in staged(store.root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert staged(store.root) == {new}
        assert client.get("/m").status_code == 200  # and the app serves on


def test_geoservice_media_sweep_from_cron(client: TestClient, city: Engine, tmp_path: Path, monkeypatch):
    uploaded = attach_one(client, city)
    store: LocalStore = client.app.state.media_store
    old, new = old_and_new_staged(store)
    age_attached(store.root)
    monkeypatch.setenv("GEOSERVICE_HOME", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(cli, ["media", "sweep"])
    assert result.exit_code == 0, result.output
    assert f"removed 1 staged files older than 86400 s from the local store ({store.root})" in result.output
    assert staged(store.root) == {new}
    assert still_served(client, uploaded)

    age(store.root / STAGED / new, 2 * 3600)  # a setting, or the option, says how old is too old
    monkeypatch.setenv("GEOSERVICE_MEDIA_STAGED_MAX_AGE_S", "3600")
    assert "removed 1 staged" in runner.invoke(cli, ["media", "sweep"]).output
    assert staged(store.root) == set()
    assert still_served(client, uploaded)
    assert "removed 0 staged" in runner.invoke(cli, ["media", "sweep", "--max-age", "60"]).output

    monkeypatch.setenv("GEOSERVICE_MEDIA_STAGED_MAX_AGE_S", "5")
    refused = runner.invoke(cli, ["media", "sweep"])
    assert refused.exit_code == 1
    assert refused.output.strip() == ("error: media settings: GEOSERVICE_MEDIA_STAGED_MAX_AGE_S: "
                                      "Input should be greater than or equal to 60")  # fmt: skip


def test_two_sweeps_at_once_both_succeed(tmp_path: Path):
    """Two workers (or a worker and cron) sweeping the same folder: every file removed once, no error."""
    store = LocalStore(tmp_path / "media")
    names = [store.stage(b"x") for _ in range(300)]
    for name in names:
        age(store.root / STAGED / name, 2 * DAY)
    counts: list[int] = []
    start = threading.Barrier(2)

    def sweep() -> None:
        start.wait()
        counts.append(store.sweep_staged(DAY))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 300 and len(counts) == 2
    assert staged(store.root) == set()


def test_a_file_gone_between_listing_and_removing_is_not_an_error(tmp_path: Path, monkeypatch):
    store = LocalStore(tmp_path / "media")
    gone, kept_old = store.stage(b"a"), store.stage(b"b")
    for name in (gone, kept_old):
        age(store.root / STAGED / name, 2 * DAY)
    listed = list((store.root / STAGED).iterdir())
    (store.root / STAGED / gone).unlink()  # the other sweep took it after this one listed the folder
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(listed))
    assert store.sweep_staged(DAY) == 1
    monkeypatch.undo()
    assert staged(store.root) == set()
    assert LocalStore(tmp_path / "never-used").sweep_staged(DAY) == 0


def test_the_s3_store_is_swept_too(s3_endpoint: str, city: Engine):  # noqa: F811
    settings = s3_settings(s3_endpoint, "sweep")
    app = create_app(engine=city, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2),
                     media_settings=settings)  # fmt: skip
    app.state.event_settings = EVENTS
    with TestClient(app) as client:
        uploaded = attach_one(client, city)
        store = app.state.media_store
        store.stage(b"left behind by a crash")
        # S3 keeps its own times: an object cannot be aged, so the sweep is asked for anything older than now
        PeriodicSweep(city, 60, EVENTS, media=store, staged_max_age_s=0).sweep_once()
        assert [o.object_name for o in store.client.list_objects("sweep", prefix=f"{STAGED}/")] == []
        assert still_served(client, uploaded)
        assert store.sweep_staged(0) == 0
    assert open_store(s3_settings(s3_endpoint, "never-made")).sweep_staged(0) == 0
