"""The S3-compatible media store against a real S3 endpoint over HTTP (moto's standalone server).

The same two-phase contract as the local store (stage, publish after the commit, discard on
failure), and a photo upload through the app with ``GEOSERVICE_MEDIA_STORE=s3``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geoservice.app import create_app
from geoservice.media.settings import MediaSettings
from geoservice.media.store import open_store
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, COMMUNITY_A, EVENTS, centre, load_events_city
from tests.geoservice.photo_files import photo
from tests.geoservice.signin import sign_in


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def s3_settings(endpoint: str, bucket: str) -> MediaSettings:
    return MediaSettings(media_store="s3", media_s3_endpoint=endpoint, media_s3_access_key="test-key",
                         media_s3_secret_key="test-secret", media_s3_secure=False, media_s3_bucket=bucket,
                         media_s3_region="us-east-1")  # fmt: skip


def test_the_s3_store_stages_publishes_and_discards(s3_endpoint: str):
    store = open_store(s3_settings(s3_endpoint, "contract"))
    kept, dropped = store.stage(b"kept bytes"), store.stage(b"dropped bytes")
    assert not store.exists("display/ab/abc.jpg")
    store.publish(kept, "display/ab/abc.jpg")
    store.discard(dropped)
    store.discard(dropped)  # twice is fine
    assert store.read("display/ab/abc.jpg") == b"kept bytes" and store.exists("display/ab/abc.jpg")
    assert store.read("display/ab/none.jpg") is None
    assert store.sweep_staged(0) == 0  # nothing staged is left: published and discarded both went
    store.stage(b"a crash's leftover")
    time.sleep(1.1)
    assert store.sweep_staged(0.5) == 1


def test_a_photo_goes_to_the_s3_store(s3_endpoint: str, empty_db: Engine):
    load_events_city(empty_db)
    app = create_app(engine=empty_db, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2),
                     media_settings=s3_settings(s3_endpoint, "photos"))  # fmt: skip
    app.state.event_settings = EVENTS
    with TestClient(app) as client:
        worker = sign_in(client, empty_db, Role.grid_worker, region_code=COMMUNITY_A)
        lon, lat = centre(0)
        event = client.post("/v1/events", json={"lon": lon, "lat": lat, "category": "city_management.garbage"},
                            headers=worker).json()  # fmt: skip
        data = photo(gps=(lon, lat))
        stored = client.post(f"/v1/events/{event['id']}/photos", files={"file": ("p.jpg", data, "image/jpeg")},
                             headers=worker)  # fmt: skip
        assert stored.status_code == 201, stored.text
        shown = client.get(stored.json()["thumb_url"], headers=worker)
        assert shown.status_code == 200 and shown.content[:2] == b"\xff\xd8"
    store = app.state.media_store
    sha = stored.json()["sha256"]
    assert store.read(f"original/{sha[:2]}/{sha}.jpg") == data
