"""``geoservice serve --workers 4``: a publish reaches every worker process through NOTIFY.

The server runs as users run it (the real command, four uvicorn worker processes, one socket). The
periodic version check is set to a minute, so a worker that answers from the new version within the
test's wait heard the NOTIFY; how fast that is, is measured in bench/, not asserted here.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

from geoservice.boundaries.drafts import create_draft
from geoservice.boundaries.publish import publish_version
from geoservice.infra.database import transaction
from geoservice.infra.embedded import free_port
from tests.geoservice.test_locate_api import load_tiny_city
from tests.settings import PUBLISHING

WORKERS = 4


@contextmanager
def serving(empty_url: str, tmp_path: Path, workers: int, **env: str) -> Iterator[str]:
    """``geoservice serve --workers N`` as users run it, on this test's database."""
    port = free_port()
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": empty_url, "GEOSERVICE_VERSION_CHECK_S": "60",
           "GEOSERVICE_HOME": str(tmp_path), "GEOSERVICE_LOG_FORMAT": "text",
           "GEOSERVICE_POOL_SIZE": "2", "GEOSERVICE_WORKER_THREADS": "2", **env}  # small workers start faster  # fmt: skip
    env.pop("GEOSERVICE_RATE_LIMIT_SHARED", None)  # as users run it: serve decides
    command = [sys.executable, "-c", "from geoservice.cli import app; app()", "serve", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def server(empty_db: Engine, empty_url: str, tmp_path: Path) -> Iterator[str]:
    load_tiny_city(empty_db)
    # /readyz is a public route, counted by the (shared) public rate limit; this test polls it hard.
    with serving(empty_url, tmp_path, WORKERS, GEOSERVICE_PUBLIC_RATE="100000/minute") as base:
        yield base


def readiness(base: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:  # a new connection: any worker
            return json.load(answer)
    except OSError:
        return None


def workers_seen(base: str, until: float, want: int | None = None) -> dict[int, int]:
    """{worker pid: router version it answered from}, polling until every worker is seen (and on ``want``)."""
    seen: dict[int, int] = {}
    while time.monotonic() < until:
        answer = readiness(base)
        if answer is not None and answer.get("router_version") is not None:
            seen[answer["worker_pid"]] = answer["router_version"]
            if len(seen) == WORKERS and (want is None or set(seen.values()) == {want}):
                return seen
        time.sleep(0.005)
    return seen


def test_a_publish_reaches_every_worker(server: str, empty_db: Engine):
    before = workers_seen(server, time.monotonic() + 120)
    assert len(before) == WORKERS, f"saw {len(before)} of {WORKERS} workers"
    (old,) = set(before.values())
    with transaction(empty_db) as session:
        draft = create_draft(session, "v2", based_on=old)
        publish_version(session, draft, **PUBLISHING)
    after = workers_seen(server, time.monotonic() + 30, want=draft)
    assert set(after) == set(before)  # the same four processes, none restarted
    assert set(after.values()) == {draft}, after


def test_the_workers_share_one_public_budget(empty_db: Engine, empty_url: str, tmp_path: Path):
    """40 requests an hour for the public: 2 workers together answer 40, not 40 each."""
    load_tiny_city(empty_db)
    granted, refused, pids = 0, 0, set()
    with serving(empty_url, tmp_path, 2, GEOSERVICE_PUBLIC_RATE="40/hour") as base:
        # Both workers listening first: on a loaded machine one worker could otherwise take all 80.
        started_by = time.monotonic() + 120
        while (tmp_path / "serve.log").read_text().count("Application startup complete") < 2:
            assert time.monotonic() < started_by, (tmp_path / "serve.log").read_text()[-2000:]
            time.sleep(0.1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and refused < 40:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:  # a new connection each
                    pids.add(json.load(answer)["worker_pid"])
                    granted += 1
            except urllib.error.HTTPError as exc:
                assert exc.code == 429, exc.code
                refused += 1
            except OSError:
                time.sleep(0.05)  # not listening yet
    assert granted == 40 and refused == 40
    assert len(pids) == 2, pids  # both workers answered from the one budget
