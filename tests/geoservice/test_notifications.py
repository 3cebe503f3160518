"""Notifications (issue 17): the right people hear of each step, read it in their inbox and live; outbound
deliveries are signed, retried, dead-lettered, retried by hand, and arrive once across a kill -9 of the
delivery process and a PostgreSQL restart."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from geoservice.app import create_app
from geoservice.cli import app as cli
from geoservice.events.sweep import sweep_deadlines
from geoservice.infra.database import make_engine, migrate, transaction
from geoservice.infra.embedded import EmbeddedCluster
from geoservice.notifications import fanout, gateways, outbox
from geoservice.notifications.settings import NotifySettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, COMMUNITY_A, EVENTS, GRIDS, TOWN_A, TOWN_B, centre, load_events_city
from tests.geoservice.signin import sign_in

ROOT = Path(__file__).parents[2]
SECRET = "s" * 32


@contextmanager
def city_client(engine: Engine, settings: NotifySettings) -> Iterator[TestClient]:
    """The events city and the real app, loops off: each test fans out and delivers when it chooses."""
    load_events_city(engine)
    app = create_app(engine=engine, auth_settings=AUTH)
    app.state.event_settings = EVENTS
    app.state.notify_settings = settings
    with TestClient(app) as client:
        yield client


class Receiver:
    """A webhook receiver on a real port: verifies signatures, records every delivery id, dedups by it."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s, self.failing = delay_s, False
        self.seen: Counter[int] = Counter()
        self.bodies: list[tuple[dict, bytes, dict]] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died between its headers and its body (the kill -9 test): like any HTTP
                    # server, a request cut short is no request. Nothing was answered, so it is resent.
                    self.close_connection = True
                    return
                time.sleep(receiver.delay_s)
                if receiver.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                headers = dict(self.headers.items())
                if not gateways.verify(SECRET, headers, body):
                    receiver.bad_signatures += 1
                receiver.seen[int(headers[gateways.DELIVERY_HEADER])] += 1
                receiver.bodies.append((json.loads(body), body, headers))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def report(client: TestClient, auth: dict, grid: int = 0, text_: str = "路口垃圾乱堆") -> dict:
    lon, lat = centre(grid)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": text_}
    answer = client.post("/v1/events", json=body, headers=auth)
    assert answer.status_code == 201, answer.text
    return answer.json()


def step(client: TestClient, auth: dict, event: dict, action: str, **fields) -> dict:
    body = {"action": action, "expected_version": event["row_version"], **fields}
    answer = client.post(f"/v1/events/{event['id']}/transitions", json=body, headers=auth)
    assert answer.status_code == 200, answer.text
    return answer.json()


def inbox_of(engine: Engine) -> dict[str, list[str]]:
    """username → the actions they were told of, in order."""
    with transaction(engine) as session:
        rows = session.execute(
            text("SELECT u.username, n.action FROM notifications n JOIN users u ON u.id = n.user_id ORDER BY n.id")
        ).all()
    found: dict[str, list[str]] = {}
    for username, action in rows:
        found.setdefault(username, []).append(action)
    return found


class Stream:
    """``GET /v1/live`` driven through the real ASGI app on the test client's event loop, chunk by chunk."""

    def __init__(self, client: TestClient, auth: dict, until: Callable[[str], bool]) -> None:
        self.text, self.until = "", until
        headers = [(b"host", b"testserver"), (b"accept", b"text/event-stream"),
                   (b"authorization", auth["Authorization"].encode())]  # fmt: skip
        self.scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                      "scheme": "http", "path": "/v1/live", "raw_path": b"/v1/live", "query_string": b"",
                      "root_path": "", "headers": headers, "client": ("testclient", 50000),
                      "server": ("testserver", 80)}  # fmt: skip
        self.future = client.portal.start_task_soon(self._run, client.app)

    async def _run(self, app) -> str:
        done = anyio.Event()

        async def receive() -> dict:
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.body":
                self.text += message.get("body", b"").decode()
                if self.until(self.text):
                    done.set()

        with anyio.fail_after(20):
            await app(self.scope, receive, send)
        return self.text

    def wait_for(self, fragment: str, timeout_s: float = 10) -> None:
        ends = time.monotonic() + timeout_s
        while fragment not in self.text:
            assert time.monotonic() < ends, self.text
            time.sleep(0.02)


def test_a_walk_tells_the_right_people_in_their_inbox_live_and_by_sms(empty_db: Engine, tmp_path: Path):
    settings = NotifySettings(in_server=False, sms_file=tmp_path / "sms.jsonl")
    with city_client(empty_db, settings) as client:
        dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=COMMUNITY_A)
        far_dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=TOWN_B)
        sign_in(client, empty_db, Role.grid_worker, "worker-0", region_code=GRIDS[0])
        sign_in(client, empty_db, Role.grid_worker, "worker-1", region_code=GRIDS[1])
        citizen = sign_in(client, empty_db, Role.public, "citizen")
        with transaction(empty_db) as session:
            session.execute(text("INSERT INTO user_grids (user_id, grid_code) SELECT id, :g0 FROM users "
                                 "WHERE username = 'worker-0' UNION ALL SELECT id, :g1 FROM users "
                                 "WHERE username = 'worker-1'"), {"g0": GRIDS[0], "g1": GRIDS[1]})  # fmt: skip

        event = report(client, citizen)
        department = event["department_code"]
        handler = sign_in(client, empty_db, Role.handler, "handler-1", department_code=department)
        sign_in(client, empty_db, Role.handler, "handler-2", department_code=department)
        sign_in(client, empty_db, Role.handler, "other-dept", department_code="police")
        with transaction(empty_db) as session:
            session.execute(text("UPDATE users SET phone = '13800000001' WHERE username = 'handler-1'"))
        assert fanout.drain(empty_db, settings) == 1
        assert inbox_of(empty_db) == {"disp-a": ["report"], "worker-0": ["report"]}  # not town B, not grid 1

        # Live: the handler's stream gets their dispatch; the dispatcher's stream sees the event change.
        handler_live = Stream(client, handler, lambda t: "event: notification" in t)
        dispatcher_live = Stream(client, dispatcher, lambda t: "event: event_change" in t)
        far_live = Stream(client, far_dispatcher, lambda t: "event: event_change" in t)
        for stream in (handler_live, dispatcher_live, far_live):
            stream.wait_for("event: ready")
        event = step(client, dispatcher, event, "accept")
        event = step(client, dispatcher, event, "dispatch", handler_username="handler-1")
        fanout.drain(empty_db, settings)
        sent = handler_live.future.result(timeout=15)
        assert "已派遣给您处置" in sent and f'"event_id": {event["id"]}' in sent
        assert '"action": "accept"' in dispatcher_live.future.result(timeout=15)
        time.sleep(0.3)
        assert "event_change" not in far_live.text  # another town's dispatcher: outside their scope
        far_live.future.cancel()

        # The sweep logs a warning colour once per (event, clock, colour); the rules notify it.
        with transaction(empty_db) as session:
            clock = session.execute(text("SELECT dispatched_at, handle_due_at FROM events WHERE id = :id"),
                                    {"id": event["id"]}).one()  # fmt: skip
        yellow = clock.dispatched_at + 0.8 * (clock.handle_due_at - clock.dispatched_at)
        results = []
        for _ in range(2):
            with transaction(empty_db) as session:
                results.append(sweep_deadlines(session, yellow, EVENTS))
        assert [r.warnings for r in results] == [1, 0] and results[0].breaches == 0

        event = step(client, handler, event, "start")
        event = step(client, handler, event, "feedback", note="已清理")
        assert fanout.drain(empty_db, settings) == 3  # warning, start, feedback
        told = inbox_of(empty_db)
        # The actor is not told of their own step; a person in two audiences (handler, department) once.
        assert told["citizen"] == ["accept", "start", "feedback"]
        assert told["handler-1"] == told["handler-2"] == ["dispatch", "warning"]
        assert told["disp-a"] == ["report", "warning", "feedback"]
        assert "other-dept" not in told and "disp-b" not in told
        assert not (tmp_path / "sms.jsonl").exists()  # nothing is sent before the outbox runs
        assert outbox.drain(empty_db, outbox.Gateways.from_settings(settings), settings) == 2
        sms = [json.loads(line) for line in (tmp_path / "sms.jsonl").read_text().splitlines()]
        assert {m["phone"] for m in sms} == {"13800000001"}  # the only one with a phone
        assert "已派遣给您处置" in sms[0]["text"] and "黄色预警" in sms[1]["text"]
        assert fanout.drain(empty_db, settings) == 0 and len(inbox_of(empty_db)["citizen"]) == 3  # once only

        # The inbox through the API: newest first, paging, unread, read one, read all, nobody else's.
        page = client.get("/v1/inbox", params={"limit": 2}, headers=citizen).json()
        assert [n["action"] for n in page["items"]] == ["feedback", "start"] and page["next_cursor"]
        rest = client.get("/v1/inbox", params={"limit": 2, "cursor": page["next_cursor"]}, headers=citizen).json()
        assert [n["action"] for n in rest["items"]] == ["accept"] and rest["next_cursor"] is None
        assert page["items"][0]["title"] == f"事件 #{event['id']} 已处置完毕，待核查"
        assert "已清理" not in page["items"][0]["body"]  # the handler's note was not marked public
        told_staff = client.get("/v1/inbox", params={"limit": 1}, headers=dispatcher).json()["items"][0]
        assert told_staff["action"] == "feedback" and "已清理" in told_staff["body"]
        assert datetime.fromisoformat(page["items"][0]["created_at"]).tzinfo is not None
        assert client.get("/v1/inbox/unread-count", headers=citizen).json() == {"unread": 3}
        first = page["items"][0]["id"]
        assert client.post(f"/v1/inbox/{first}/read", headers=handler).status_code == 404  # not theirs
        read = client.post(f"/v1/inbox/{first}/read", headers=citizen).json()
        assert read["read_at"] is not None
        unread = client.get("/v1/inbox", params={"unread": "true"}, headers=citizen).json()["items"]
        assert [n["action"] for n in unread] == ["start", "accept"]
        assert client.post("/v1/inbox/read-all", headers=citizen).json() == {"marked": 2}
        assert client.get("/v1/inbox/unread-count", headers=citizen).json() == {"unread": 0}
        assert client.get("/v1/inbox/unread-count", headers=handler).json() == {"unread": 2}
        assert client.get("/v1/inbox", params={"cursor": "x"}, headers=citizen).status_code == 422
        # A client without a stream polls /v1/live as JSON from where it was.
        polled = client.get("/v1/live", headers={**handler, "Last-Event-ID": "0-0"}).json()
        assert [n["action"] for n in polled["notifications"]] == ["dispatch", "warning"]
        assert polled["changes"] == [] and polled["last_event_id"].startswith(f"{polled['notifications'][-1]['id']}-")
        warned = client.get("/v1/inbox", params={"limit": 1}, headers=handler).json()["items"][0]
        assert warned["title"] == f"事件 #{event['id']} 时限预警" and "黄色预警" in warned["body"]

        # Each escalation is told to the dispatchers of the level it reached, however late the fan-out runs.
        sign_in(client, empty_db, Role.dispatcher, "disp-town-a", region_code=TOWN_A)
        sign_in(client, empty_db, Role.supervisor, "supervisor")
        admin = sign_in(client, empty_db, Role.admin, "admin")  # the handler fed back: the grid holds it now
        event = step(client, admin, event, "escalate", note="需要社区协调")
        event = step(client, admin, event, "escalate", note="需要镇街协调")
        assert event["escalation_level"] == "town" and fanout.drain(empty_db, settings) == 2
        told = inbox_of(empty_db)
        assert told["disp-a"] == ["report", "warning", "feedback", "escalate"]  # to the community
        assert told["disp-town-a"] == ["escalate"] and told["supervisor"] == ["escalate", "escalate"]
        assert "disp-b" not in told


def test_webhooks_are_signed_retried_with_backoff_dead_lettered_and_retried(
    empty_db: Engine, use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    receiver = Receiver()
    settings = NotifySettings(in_server=False, webhooks=[receiver.url], webhook_secret=SECRET, max_attempts=3,
                              backoff_s=0.3, sms_file=tmp_path / "sms.jsonl")  # fmt: skip
    channels = outbox.Gateways.from_settings(settings)
    try:
        with city_client(empty_db, settings) as client:
            event = report(client, sign_in(client, empty_db, Role.public, "citizen"))
        fanout.drain(empty_db, settings)
        receiver.failing = True
        before = datetime.now(UTC)
        assert outbox.drain(empty_db, channels, settings) == 1
        with transaction(empty_db) as session:
            row = session.execute(text("SELECT * FROM deliveries")).one()
        assert row.attempts == 1 and row.last_error == "HTTP 500 from the receiver" and row.dead_at is None
        wait = (row.next_attempt_at - before).total_seconds()
        assert 0.8 * 0.3 - 0.05 <= wait <= 1.2 * 0.3 + 0.5  # first backoff, with jitter
        assert outbox.drain(empty_db, channels, settings) == 0  # not due yet
        for attempt in (2, 3):  # the wait doubles: 0.6 s after the second failure
            time.sleep(0.3 * 2 ** (attempt - 2) * 1.2 + 0.05)
            assert outbox.drain(empty_db, channels, settings) == 1
        runner = CliRunner()
        dead = runner.invoke(cli, ["notify", "dead-letters"])
        assert dead.exit_code == 0 and "1 dead letters" in dead.output, dead.output
        assert f"event {event['id']}" in dead.output and "3 attempts" in dead.output and receiver.url in dead.output
        assert receiver.seen == Counter()
        receiver.failing = False
        assert runner.invoke(cli, ["notify", "retry", "999"]).exit_code == 1
        assert runner.invoke(cli, ["notify", "retry", str(row.id)]).exit_code == 0
        for name, value in (("WEBHOOKS", json.dumps([receiver.url])), ("WEBHOOK_SECRET", SECRET),
                            ("SMS_FILE", str(tmp_path / "sms.jsonl"))):  # fmt: skip
            monkeypatch.setenv(f"GEOSERVICE_NOTIFY_{name}", value)
        once = runner.invoke(cli, ["notify", "run", "--once"])
        assert "0 steps fanned out, 1 deliveries tried" in once.output and receiver.seen == Counter({row.id: 1})
        assert runner.invoke(cli, ["notify", "retry", str(row.id)]).exit_code == 1  # delivered: nothing to retry
        [(payload, body, headers)] = receiver.bodies
        assert receiver.bad_signatures == 0 and gateways.verify(SECRET, headers, body)
        assert payload["action"] == "report" and payload["event_id"] == event["id"] and payload["delivery_id"] == row.id
        assert not gateways.verify(SECRET, headers, body.replace(b"report", b"rep0rt"))  # tampered
        assert not gateways.verify("another secret of 32 characters.", headers, body)
    finally:
        channels.webhook.close()
        receiver.close()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[tuple[EmbeddedCluster, str]]:
    """A cluster of this test's own: restarting the suite's would pull it from under other tests."""
    cluster = EmbeddedCluster(tmp_path / "pg")
    url = cluster.up("notify")
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield cluster, url
    cluster.down()


def test_every_delivery_arrives_once_across_kill_9_and_a_database_restart(own_cluster, tmp_path: Path):
    cluster, url = own_cluster
    receiver = Receiver(delay_s=0.05)
    engine = make_engine(url)
    settings = NotifySettings(in_server=False, webhooks=[receiver.url], webhook_secret=SECRET)
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": url, "GEOSERVICE_NOTIFY_WEBHOOKS": json.dumps([receiver.url]),
           "GEOSERVICE_NOTIFY_WEBHOOK_SECRET": SECRET, "GEOSERVICE_NOTIFY_POLL_S": "0.1",
           "GEOSERVICE_NOTIFY_BACKOFF_S": "0.2", "GEOSERVICE_NOTIFY_MAX_ATTEMPTS": "50",
           "GEOSERVICE_NOTIFY_SMS_FILE": str(tmp_path / "sms.jsonl")}  # fmt: skip

    def notify_run() -> subprocess.Popen:
        command = [sys.executable, "-c", "from geoservice.cli import app; app()", "notify", "run"]
        log = (tmp_path / "notify.log").open("a")
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
        ends = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < ends, (receiver.seen, (tmp_path / "notify.log").read_text()[-3000:])
            time.sleep(0.02)

    try:
        with city_client(engine, settings) as client:
            citizen = sign_in(client, engine, Role.public, "citizen")
            events = [report(client, citizen, grid=k % 4, text_=f"第{k}处") for k in range(30)]
        worker = notify_run()
        until(lambda: len(receiver.seen) >= 5)
        worker.send_signal(signal.SIGKILL)  # mid-delivery: the receiver answers in 50 ms, so one is in flight
        worker.wait()
        assert len(receiver.seen) < len(events)  # killed with work left
        worker = notify_run()
        until(lambda: len(receiver.seen) >= 15)
        cluster.down()  # PostgreSQL stops mid-delivery, and comes back
        assert len(receiver.seen) < len(events)
        time.sleep(0.5)
        cluster.up("notify")
        until(lambda: len(receiver.seen) >= len(events))
        engine.dispose()
        with transaction(engine) as session:
            until(lambda: session.execute(
                text("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL")).scalar_one() == 0)  # fmt: skip
            ids = set(session.execute(text("SELECT id FROM deliveries")).scalars())
            reported = {b[0]["event_id"] for b in receiver.bodies}
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
        assert len(ids) == len(events) and set(receiver.seen) == ids  # every delivery arrived, none missing
        assert reported == {e["id"] for e in events} and receiver.bad_signatures == 0
        # Redeliveries (a send whose commit a kill or the restart cut off) carry the same id: processed once.
        assert all(count <= 2 for count in receiver.seen.values())
    finally:
        receiver.close()
        engine.dispose()


def test_a_burst_of_steps_is_told_in_batches_once_each_in_order(empty_db: Engine):
    """Steps share a transaction (``fanout.BATCH``): a drain's limit cuts a batch, the next drain goes on."""
    settings = NotifySettings(in_server=False)
    with city_client(empty_db, settings) as client:
        sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=COMMUNITY_A)
        worker = sign_in(client, empty_db, Role.grid_worker, "worker-0", region_code=GRIDS[0])
        ids = [report(client, worker, text_=f"路口垃圾乱堆 {i}")["id"] for i in range(fanout.BATCH + 20)]
    assert fanout.drain(empty_db, settings, limit=fanout.BATCH + 5) == fanout.BATCH + 5
    assert fanout.drain(empty_db, settings) == 15
    assert fanout.drain(empty_db, settings) == 0
    with transaction(empty_db) as session:
        told = session.execute(text("SELECT n.event_id FROM notifications n JOIN users u ON u.id = n.user_id "
                                    "WHERE u.username = 'disp-a' ORDER BY n.id")).scalars().all()  # fmt: skip
        waiting = session.execute(text("SELECT count(*) FROM notification_queue WHERE done_at IS NULL")).scalar()
    assert told == ids and waiting == 0  # every report once, in the order reported; the reporter is not told
    assert inbox_of(empty_db).keys() == {"disp-a"}


def test_a_batch_reads_the_accounts_once_a_transaction_and_a_new_one_reads_them_again(empty_db: Engine):
    """The dispatchers and grid workers are read once per batch; a session's next transaction reads them anew."""
    settings = NotifySettings(in_server=False)
    with city_client(empty_db, settings) as client:
        sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=COMMUNITY_A)
        worker = sign_in(client, empty_db, Role.grid_worker, "worker-0", region_code=GRIDS[0])
        report(client, worker)
        with Session(empty_db) as session:  # one session, two transactions
            with session.begin():
                assert len(fanout.fan_out_steps(session, settings)) == 1
            sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=COMMUNITY_A)
            report(client, worker)
            with session.begin():
                assert len(fanout.fan_out_steps(session, settings)) == 1
    assert inbox_of(empty_db) == {"disp-a": ["report", "report"], "disp-b": ["report"]}


def test_a_batch_asks_for_its_grid_workers_and_subscribers_once_and_tells_each_their_own(empty_db: Engine):
    """A batch of reports in four grids: each grid's worker and each area's subscriber hears only theirs.

    The batch's grid workers and area subscribers are read in one query each (``recipients.prime``),
    not one per report: a burst of reports is fanned out at the pace it arrives (issue 22).
    """
    settings = NotifySettings(in_server=False)
    with city_client(empty_db, settings) as client:
        dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=COMMUNITY_A)
        for k, grid in enumerate(GRIDS):
            sign_in(client, empty_db, Role.grid_worker, f"worker-{k}", region_code=grid)
        watcher = sign_in(client, empty_db, Role.public, "watcher")
        lon, lat = centre(2)
        circle = {"circle": {"lon": lon, "lat": lat, "radius_m": 200}}
        assert client.post("/v1/subscriptions", json=circle, headers=watcher).status_code == 201
        with transaction(empty_db) as session:
            session.execute(text("INSERT INTO user_grids (user_id, grid_code) SELECT id, :g FROM users "
                                 "WHERE username = :u"), [{"g": g, "u": f"worker-{k}"} for k, g in enumerate(GRIDS)])  # fmt: skip
        ids = [report(client, dispatcher, grid=k % len(GRIDS))["id"] for k in range(12)]
    asked: Counter[str] = Counter()

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001 (SQLAlchemy's listener signature)
        for table in ("user_grids", "subscriptions"):
            asked[table] += table in statement

    event.listen(empty_db, "before_cursor_execute", count)
    try:
        assert fanout.drain(empty_db, settings) == len(ids)
    finally:
        event.remove(empty_db, "before_cursor_execute", count)
    assert asked == {"user_grids": 1, "subscriptions": 1}  # one batch: one read of each
    with transaction(empty_db) as session:
        rows = session.execute(text("SELECT u.username, n.event_id FROM notifications n JOIN users u ON u.id = n.user_id "
                                    "ORDER BY n.id")).all()  # fmt: skip
    heard: dict[str, list[int]] = {}
    for username, event_id in rows:
        heard.setdefault(username, []).append(event_id)
    assert heard == {f"worker-{k}": ids[k::len(GRIDS)] for k in range(len(GRIDS))} | {"watcher": ids[2::len(GRIDS)]}
