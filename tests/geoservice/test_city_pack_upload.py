"""An admin uploads a zipped city pack over HTTP: checked at once, then loaded as a job with progress."""

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.app import create_app
from layers.models import Role
from tests.geoservice.signin import sign_in
from tests.geoservice.test_city_pack import EXAMPLE, _faulty_pack


def zipped(directory: Path, *, prefix: str = "city-pack/", extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for path in sorted(directory.iterdir()):
            out.write(path, prefix + path.name)
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def client(empty_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("GEOSERVICE_HOME", str(tmp_path / "home"))  # where one-time passwords go
    with TestClient(create_app(engine=empty_db)) as client:
        yield client


def upload(client: TestClient, headers: dict[str, str], data: bytes):
    return client.post("/v1/city-packs", headers=headers, files={"pack": ("pack.zip", data, "application/zip")})


def test_a_zipped_pack_loads_as_a_job_with_progress(client: TestClient, empty_db: Engine, tmp_path: Path):
    admin = sign_in(client, empty_db, Role.admin, "admin-wu")
    started = upload(client, admin, zipped(EXAMPLE))
    assert started.status_code == 202, started.text
    href = started.json()["href"]
    seen, deadline = set(), time.monotonic() + 60
    while (job := client.get(href, headers=admin).json())["status"] == "running" and time.monotonic() < deadline:
        seen.add(job["step"])
        time.sleep(0.05)
    assert job["status"] == "done", job
    assert job["actor"] == "admin-wu" and job["steps_done"] >= 6
    result = job["result"]
    assert (result["version"], result["published"]) == ("example-2026", True)
    assert result["counts"]["grids"] == 24 and result["counts"]["users"] == 9
    passwords = Path(result["passwords_file"])
    assert passwords.parent == (tmp_path / "home").absolute() and oct(passwords.stat().st_mode & 0o777) == "0o600"
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM grids")).scalar_one() == 24


def test_a_faulty_pack_is_a_422_listing_every_fault_and_starts_nothing(
    client: TestClient, empty_db: Engine, tmp_path: Path
):
    admin = sign_in(client, empty_db, Role.admin, "admin-wu")
    answer = upload(client, admin, zipped(_faulty_pack(tmp_path)))
    assert answer.status_code == 422
    body = answer.json()
    assert body["title"] == "City pack rejected" and len(body["faults"]) >= 6
    assert any("routing_rules.csv: line 2: code 1: field department_code" in f for f in body["faults"])
    escaping = upload(client, admin, zipped(EXAMPLE, extra={"../outside.txt": b"x"}))
    assert escaping.status_code == 422 and "outside the pack" in escaping.json()["detail"]
    assert upload(client, admin, b"not a zip").status_code == 422
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pack_jobs")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM grids")).scalar_one() == 0


def test_only_admins_upload_packs(client: TestClient, empty_db: Engine):
    planner = sign_in(client, empty_db, Role.planner)
    assert upload(client, planner, zipped(EXAMPLE)).status_code == 403
    assert client.get("/v1/city-packs/jobs/1", headers=planner).status_code == 403
