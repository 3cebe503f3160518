"""HTTP as clients read it (issue 20): compression, CORS, ``Allow`` on 405, unknown parameters refused.

Everything through the real ASGI app on the events city. Compressed bodies are read raw (as sent)
and decoded here with the codec named by ``Content-Encoding``, so the test sees what a browser
would have to decode, not what the HTTP client already undid.
"""

import gzip
import json
import re
from collections.abc import Iterator

import anyio
import brotli
import pytest
import zstandard
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geoservice.app import create_app
from geoservice.settings import OperationsSettings, RoutingSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, EVENTS, load_events_city
from tests.geoservice.signin import sign_in
from tests.tiles.helpers import decode
from tests.tiles.test_tiles_api import CITY_CENTRE, CITY_Z, tile_url

MAP_ORIGIN = "https://map.example.cn"
DECODE = {"gzip": gzip.decompress, "br": brotli.decompress,
          "zstd": lambda raw: zstandard.ZstdDecompressor().decompressobj().decompress(raw)}  # fmt: skip
TILE = tile_url("grids", *CITY_CENTRE, CITY_Z)  # ~500 bytes: the test city is small (bench/ has real sizes)


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_events_city(empty_db)
    operations = OperationsSettings(cors_origins=[MAP_ORIGIN], compress_min_bytes=200)
    app = create_app(engine=empty_db, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2),
                     operations=operations)  # fmt: skip
    app.state.event_settings = EVENTS
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.admin)


def raw_get(client: TestClient, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the body exactly as sent (still compressed)."""
    with client.stream("GET", url, headers=headers) as response:
        return response.status_code, dict(response.headers), b"".join(response.iter_raw())


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_geojson_json_and_tiles_are_compressed_when_accepted(client: TestClient, admin: dict, coding: str):
    for url, media in (("/collections/grids/items?limit=100", "application/geo+json"),
                       ("/v1/reference/categories", "application/json"),
                       (TILE, "application/vnd.mapbox-vector-tile")):  # fmt: skip
        _, plain_headers, plain = raw_get(client, url, {**admin, "Accept-Encoding": "identity"})
        assert "content-encoding" not in plain_headers and plain_headers["content-type"].startswith(media)
        assert len(plain) > 200, url
        status, headers, raw = raw_get(client, url, {**admin, "Accept-Encoding": f"{coding}, identity;q=0.5"})
        assert status == 200 and headers["content-encoding"] == coding, (url, headers)
        assert "accept-encoding" in headers["vary"].lower()
        body = DECODE[coding](raw)
        assert int(headers["content-length"]) == len(raw)
        if media == "application/vnd.mapbox-vector-tile":
            assert body == plain and decode(body)["grids"]["features"]
        else:
            assert len(raw) < len(plain) / 2
            decoded, expected = json.loads(body), json.loads(plain)
            if isinstance(decoded, dict):  # a FeatureCollection's timeStamp is the time of each answer
                decoded.pop("timeStamp"), expected.pop("timeStamp")
            assert decoded == expected


def test_the_preferred_coding_and_refusals_are_honoured(client: TestClient, admin: dict):
    every = raw_get(client, TILE, {**admin, "Accept-Encoding": "gzip, br, zstd"})[1]
    assert every["content-encoding"] == "zstd"  # the server's order: zstd, br, gzip
    no_br = raw_get(client, TILE, {**admin, "Accept-Encoding": "br;q=0, gzip"})[1]
    assert no_br["content-encoding"] == "gzip"
    none = raw_get(client, TILE, {**admin, "Accept-Encoding": "gzip;q=0"})[1]
    assert "content-encoding" not in none
    small = raw_get(client, "/healthz", {"Accept-Encoding": "gzip"})[1]  # under the minimum size
    assert "content-encoding" not in small


def test_a_compressed_tile_keeps_its_etag_weakly_and_304s_on_both_forms(client: TestClient, admin: dict):
    plain = raw_get(client, TILE, {**admin, "Accept-Encoding": "identity"})[1]
    strong = plain["etag"]
    assert not strong.startswith("W/")
    sent = []
    for attempt in range(2):  # the cached fast path (geoservice.api.tile_hits), compressed once
        status, headers, raw = raw_get(client, TILE, {**admin, "Accept-Encoding": "br"})
        assert status == 200 and headers["content-encoding"] == "br", attempt
        assert headers["etag"] == f"W/{strong}" and "accept-encoding" in headers["vary"].lower()
        assert headers["x-tile-cache"] == "hit"
        sent.append(raw)
        assert (strong, "br") in client.app.state.encoded_tiles
    identity = raw_get(client, TILE, {**admin, "Accept-Encoding": "identity"})[2]
    assert sent[0] == sent[1] and brotli.decompress(sent[0]) == identity
    for held in (strong, f"W/{strong}"):
        revalidated = client.get(TILE, headers={**admin, "Accept-Encoding": "br", "If-None-Match": held})
        assert revalidated.status_code == 304 and revalidated.content == b""


def test_live_streams_are_never_compressed_or_held_back(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.dispatcher, region_code="320682000000")
    started: dict[str, str] = {}
    chunks: list[bytes] = []

    async def run(app) -> None:  # noqa: ANN001
        done = anyio.Event()
        headers = [(b"host", b"testserver"), (b"accept", b"text/event-stream"),
                   (b"accept-encoding", b"gzip, br, zstd"), (b"authorization", auth["Authorization"].encode())]  # fmt: skip
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                 "path": "/v1/live", "raw_path": b"/v1/live", "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("testclient", 50000), "server": ("testserver", 80)}  # fmt: skip

        async def receive() -> dict:
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                started.update({k.decode().lower(): v.decode() for k, v in message["headers"]})
            elif message["type"] == "http.response.body" and message.get("body"):
                chunks.append(message["body"])
                if b"event: ready" in b"".join(chunks):  # the first event arrives on its own, readable
                    done.set()

        with anyio.fail_after(20):
            await app(scope, receive, send)

    client.portal.call(run, client.app)
    assert started["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in started
    assert b"event: ready" in b"".join(chunks)


def test_a_map_on_the_configured_origin_may_call_tiles_and_api(client: TestClient, admin: dict):
    preflight = client.options(TILE, headers={
        "Origin": MAP_ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, if-none-match"})  # fmt: skip
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == MAP_ORIGIN
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    posting = client.options("/v1/events", headers={"Origin": MAP_ORIGIN, "Access-Control-Request-Method": "POST",
                                                    "Access-Control-Request-Headers": "content-type, idempotency-key"})
    assert posting.status_code == 200
    tile = client.get(TILE, headers={**admin, "Origin": MAP_ORIGIN})
    assert tile.status_code == 200 and tile.headers["access-control-allow-origin"] == MAP_ORIGIN
    assert "etag" in tile.headers["access-control-expose-headers"].lower()
    stranger = client.options(TILE, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert stranger.status_code == 400 and "access-control-allow-origin" not in stranger.headers
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "https://evil.example"}).headers


def test_cors_is_off_by_default(empty_db: Engine):
    with TestClient(create_app(engine=empty_db, auth_settings=AUTH)) as client:
        preflight = client.options("/v1/locate", headers={"Origin": MAP_ORIGIN, "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.status_code == 405  # no route takes OPTIONS: an ordinary 405, with Allow
        assert set(preflight.headers["allow"].split(", ")) == {"GET", "POST"}


def published(client: TestClient) -> dict[str, set[str]]:
    """Path → the methods the OpenAPI document publishes for it."""
    paths = client.get("/openapi.json").json()["paths"]
    return {path: {m.upper() for m in ops} for path, ops in paths.items()}


def concrete(path: str) -> str:
    """A path of the document with its parameters filled in ({format} as json, others as 1)."""
    return re.sub(r"\{[^}]+\}", "1", path.replace("{format}", "json"))


def test_every_405_names_the_allowed_methods(client: TestClient, admin: dict):
    paths = published(client)
    templates = {path: re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$") for path in paths}
    checked = 0
    for path, methods in paths.items():
        url = concrete(path)
        # A wrong method here may be another route's right one (GET …/imports is GET …/{id}): not a 405.
        elsewhere = {m for other, pattern in templates.items() if other != path and pattern.match(url)
                     for m in paths[other]}  # fmt: skip
        for wrong in {"GET", "POST", "PUT", "PATCH", "DELETE"} - methods - elsewhere:
            response = client.request(wrong, url, headers=admin)
            assert response.status_code == 405, (wrong, path, response.status_code)
            allowed = set(response.headers["allow"].split(", "))
            assert allowed == methods | elsewhere, (wrong, path, allowed)
            checked += 1
    assert checked > 100
    locate = client.delete("/v1/locate")
    assert locate.headers["content-type"] == "application/problem+json" and "GET, POST" in locate.json()["detail"]
    open311 = client.put("/open311/v2/requests.json")
    assert open311.status_code == 405 and set(open311.headers["allow"].split(", ")) == {"GET", "POST"}
    assert open311.json()[0]["code"] == 405  # Open311 answers in its own error shape


def test_every_route_refuses_an_unknown_query_parameter(client: TestClient, admin: dict):
    """One mechanism: each published operation, called with a misspelt parameter, refuses it by name."""
    checked = 0
    for path, methods in published(client).items():
        for method in methods:
            response = client.request(method, concrete(path), params={"stauts": "open"}, headers=admin)
            checked += 1
            if path.startswith("/open311/"):
                assert response.status_code == 400, (method, path, response.text)
                assert "stauts" in response.json()[0]["description"]
            elif path.startswith("/collections/{collection_id}/items"):  # OGC's own check: 400, per the standard
                assert response.status_code in (400, 404), (method, path, response.text)
            else:
                assert response.status_code == 422, (method, path, response.status_code, response.text)
                problem = response.json()
                assert problem["title"] == "Unknown parameter" and "stauts" in problem["detail"], (method, path)
                assert problem["errors"] == [{"field": "query.stauts", "message": "unknown parameter"}]
    assert checked > 80
    grids = client.get("/collections/grids/items", params={"stauts": "open"}, headers=admin)
    assert grids.status_code == 400 and "stauts" in grids.json()["detail"]
    # A declared parameter still works, and the refusal lists what the route takes.
    refused = client.get("/v1/events", params={"stauts": "reported"}, headers=admin).json()["detail"]
    assert "status" in refused.split("it takes:")[1]
    assert client.get("/v1/events", params={"status": "reported"}, headers=admin).status_code == 200
    # The tile fast path declines what the route refuses: a cached tile with a stray parameter is still a 422.
    assert client.get(TILE, headers=admin).status_code == 200
    assert client.get(TILE, headers=admin).headers["x-tile-cache"] == "hit"
    assert client.get(TILE, params={"stauts": "x"}, headers=admin).status_code == 422
