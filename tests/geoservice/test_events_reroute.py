"""``geoservice events reroute``: closed events re-attributed to a new boundary version, resumably.

The tiny city's v1 has four grids in a row; v2 moves the edge between 西村's two grids half a cell
east, so closed events in that strip change grid. Every event here is stored and placed under v1
first (as an import places history), then v2 is published.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from shapely import MultiPolygon, box
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geoservice.cli import app
from geoservice.infra.database import transaction
from geoservice.routing.bulk import route_points
from geoservice.routing.bulk_events import assign_places
from geoservice.routing.loader import load_router
from tests.etl import tiny_city
from tests.etl.tiny_city import WEST, X0, Y0, D
from tests.geoservice.test_locate_api import load_tiny_city_version
from tests.settings import ROUTING

CLOSED = ("archived", "evaluated", "rejected", "merged")
OPEN = ("reported", "handling")
PLACE = ("grid_code", "community_code", "town_code", "station_code")
N = 400


def v2_grids():
    """v1's grids with the edge between 西村's grids moved from X0 + D to X0 + 1.5 D."""
    grids = tiny_city.grids()
    grids.loc[0, "geometry"] = MultiPolygon([box(X0, Y0, X0 + 1.5 * D, Y0 + D)])
    grids.loc[1, "geometry"] = MultiPolygon([box(X0 + 1.5 * D, Y0, X0 + 2 * D, Y0 + D)])
    return grids


@pytest.fixture
def history(routing_city: Engine) -> Engine:
    """N events over the town and around it, most closed, reported in 2025 or 2026, placed under v1; then v2."""
    rng = np.random.default_rng(21)
    lon = X0 - 0.3 * D + rng.random(N) * 4.6 * D
    lat = Y0 + rng.random(N) * D
    statuses = np.array([*CLOSED, *OPEN])[rng.integers(0, 6, N)]
    years = rng.integers(2025, 2027, N)
    with transaction(routing_city) as session:
        for x, y, status, year in zip(lon, lat, statuses, years, strict=True):
            session.execute(
                text("INSERT INTO events (geom, category_code, status, occurred_at, reported_at) "
                     "VALUES (ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'city_management', :s, now(), :r)"),
                {"x": float(x), "y": float(y), "s": str(status), "r": f"{year}-06-01T00:00:00+08:00"},
            )  # fmt: skip
        assign_places(session)
    load_tiny_city_version(routing_city, "v2", v2_grids())
    return routing_city


def run(*args: object, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["events", "reroute", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def snapshot(engine: Engine) -> dict[int, tuple]:
    """Every event's place, version, status, department, owner, row version and update time."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, grid_code, community_code, town_code, station_code, boundary_version_id, status, "
            "department_code, owner_kind, owner_code, row_version, updated_at FROM events ORDER BY id"
        )).all()  # fmt: skip
    return {r.id: tuple(r[1:]) for r in rows}


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT (SELECT count(*) FROM event_log), (SELECT count(*) FROM event_owners), "
            "(SELECT count(*) FROM notification_queue)"
        )).one())  # fmt: skip


def expected(engine: Engine, since: str | None = None) -> dict[int, tuple]:
    """The local router's v2 place of every closed event (reported since ``since``)."""
    with transaction(engine) as session:
        v2 = session.execute(text("SELECT id FROM boundary_versions WHERE name = 'v2'")).scalar_one()
        router = load_router(session, v2, ROUTING)
        rows = session.execute(
            text("SELECT id, ST_X(geom), ST_Y(geom) FROM events WHERE status = ANY(:c) "
                 "AND (CAST(:since AS timestamptz) IS NULL OR reported_at >= CAST(:since AS timestamptz)) ORDER BY id"),
            {"c": list(CLOSED), "since": since},
        ).all()  # fmt: skip
    ids, lon, lat = (np.array(c) for c in zip(*rows, strict=True))
    routed = route_points(router, lon.astype(float), lat.astype(float))
    return {int(i): (*(routed[f].iat[k] or None for f in PLACE), v2) for k, i in enumerate(ids)}


def partitions(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT run_id, seq, done_at, events, moved, outside FROM reroute_partitions ORDER BY run_id, seq"
        )).all()  # fmt: skip


def check_result(before: dict, after: dict, want: dict) -> int:
    """Closed events carry v2's places and nothing else changed; open ones are untouched. Returns how many moved."""
    moved = 0
    for event_id, old in before.items():
        new = after[event_id]
        if event_id in want:
            changed = new[:4] != old[:4]
            assert new[:4] == want[event_id][:4], event_id
            assert new[4] == (want[event_id][4] if changed else old[4]), event_id  # the version that placed it
            assert new[5:] == old[5:], event_id  # status, department, owner, row version, updated_at
            moved += changed
        else:
            assert new == old, event_id
    return moved


def test_closed_events_take_the_new_versions_places_once(history: Engine):
    before, logged = snapshot(history), counts(history)
    want = expected(history)
    message = run("--version", "v2", "--partition-size", 37)
    after = snapshot(history)
    moved = check_result(before, after, want)
    assert moved > 10  # the strip between X0 + D and X0 + 1.5 D changed grid
    outside = sum(1 for v in want.values() if v[0] is None)
    assert outside > 5
    assert (
        f"{len(want):,} closed events re-attributed to version v2: {moved} changed place, {outside} outside" in message
    )
    assert counts(history) == logged  # no log rows, no owner changes, nobody notified
    parts = partitions(history)
    assert len(parts) == -(-len(want) // 37) and all(p.done_at is not None for p in parts)
    assert sum(p.events for p in parts) == len(want) and sum(p.moved for p in parts) == moved
    # Done: the same command starts a new run, which finds nothing to move.
    again = run("--version", "v2", "--partition-size", 1000)
    assert f"{len(want):,} closed events re-attributed to version v2: 0 changed place" in again
    assert snapshot(history) == after


def test_since_limits_the_run_to_recent_reports(history: Engine):
    before = snapshot(history)
    want = expected(history, "2026-01-01T00:00:00+08:00")
    assert 0 < len(want) < sum(1 for v in before.values() if v[5] in CLOSED)
    run("--version", "v2", "--since", "2026-01-01T00:00:00+08:00", "--partition-size", 50)
    check_result(before, snapshot(history), want)


def test_dask_writes_what_the_local_engine_writes(history: Engine):
    before = snapshot(history)
    run("--version", "v2", "--partition-size", 40)
    local = snapshot(history)
    local_parts = [(p.seq, p.events, p.moved, p.outside) for p in partitions(history)]
    with transaction(history) as session:  # history as it was: v1's places on every closed event
        for event_id, old in before.items():
            session.execute(
                text("UPDATE events SET grid_code = :g, community_code = :c, town_code = :t, station_code = :s, "
                     "boundary_version_id = :v WHERE id = :id"),
                {"g": old[0], "c": old[1], "t": old[2], "s": old[3], "v": old[4], "id": event_id},
            )  # fmt: skip
    assert snapshot(history) == before
    message = run("--version", "v2", "--partition-size", 40, "--engine", "dask", "--workers", 2)
    assert snapshot(history) == local
    parts = partitions(history)
    assert [(p.seq, p.events, p.moved, p.outside) for p in parts if p.run_id == parts[-1].run_id] == local_parts
    assert "starting run" in message


def test_a_failing_partition_stays_pending_and_a_rerun_resumes_it(history: Engine):
    """Partition 2 fails once, in the database, as it is marked done: rolled back whole, then resumed."""
    before, want = snapshot(history), expected(history)
    with transaction(history) as session:
        session.execute(text(
            """
            CREATE SEQUENCE partition_two_failures;
            CREATE FUNCTION fail_partition_two_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.seq = 2 AND NEW.done_at IS NOT NULL AND nextval('partition_two_failures') = 1 THEN
                    RAISE EXCEPTION 'partition two fails once';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER fail_partition_two_once BEFORE UPDATE ON reroute_partitions
                FOR EACH ROW EXECUTE FUNCTION fail_partition_two_once();
            """
        ))  # fmt: skip
    message = run("--version", "v2", "--partition-size", 30, "--engine", "dask", "--workers", 2, code=1)
    assert "1 partition(s) failed and stay pending" in message and "partition two fails once" in message
    first = {p.seq: p for p in partitions(history)}
    assert first[2].done_at is None and all(p.done_at is not None for s, p in first.items() if s != 2)
    with history.connect() as conn:
        two = conn.execute(text("SELECT first_id, end_id FROM reroute_partitions WHERE seq = 2")).one()
    in_two = [i for i in want if two.first_id <= i < two.end_id]
    after_failure = snapshot(history)
    assert in_two and all(after_failure[i] == before[i] for i in in_two)  # rolled back whole

    message = run("--version", "v2", "--partition-size", 30, "--engine", "dask", "--workers", 2)
    assert f"resuming run {first[2].run_id}: 1 of {len(first)} partitions to do" in message
    second = {p.seq: p for p in partitions(history)}
    assert all(second[s].done_at == first[s].done_at for s in first if s != 2)  # not done twice
    assert second[2].done_at is not None
    assert sum(p.events for p in second.values()) == len(want)
    moved = check_result(before, snapshot(history), want)
    assert sum(p.moved for p in second.values()) == moved


def test_a_killed_client_loses_and_doubles_no_partition(history: Engine, use_database: str):
    """The command is killed (SIGKILL) mid-run; run again, it resumes the rest. Partitions are slowed in SQL."""
    before, want = snapshot(history), expected(history)
    with transaction(history) as session:
        session.execute(text(
            """
            CREATE FUNCTION slow_partitions() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.1); RETURN NEW; END $$;
            CREATE TRIGGER slow_partitions BEFORE UPDATE ON reroute_partitions
                FOR EACH ROW EXECUTE FUNCTION slow_partitions();
            """
        ))  # fmt: skip
    command = [sys.executable, "-c", "from geoservice.cli import app; app()",
               "events", "reroute", "--version", "v2", "--partition-size", "10"]  # fmt: skip
    process = subprocess.Popen(
        command, env=os.environ.copy(), cwd=Path(__file__).parents[2],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = sum(p.done_at is not None for p in partitions(history))
            if done >= 3:
                break
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(10)
    killed = partitions(history)
    done = [p for p in killed if p.done_at is not None]
    assert 3 <= len(done) < len(killed)
    with transaction(history) as session:
        session.execute(text("DROP TRIGGER slow_partitions ON reroute_partitions"))
    result = CliRunner().invoke(app, ["events", "reroute", "--version", "v2", "--partition-size", "10"])
    assert result.exit_code == 0, result.output
    assert f"resuming run {killed[0].run_id}: {len(killed) - len(done)} of {len(killed)} partitions" in " ".join(
        result.output.split()
    )
    resumed = partitions(history)
    assert {p.seq: p.done_at for p in resumed if p.seq in {d.seq for d in done}} == {d.seq: d.done_at for d in done}
    assert all(p.done_at is not None for p in resumed)
    assert sum(p.events for p in resumed) == len(want)
    assert sum(p.moved for p in resumed) == check_result(before, snapshot(history), want)


def test_refusals_are_one_line(history: Engine):
    assert "no boundary version called 'v9'" in run("--version", "v9", code=1)
    assert "needs a time zone" in run("--version", "v2", "--since", "2026-01-01T00:00:00", code=1)
    assert "--scheduler goes with --engine dask" in run("--version", "v2", "--scheduler", "tcp://x:1", code=1)
    with transaction(history) as session:  # an unfinished run for v1 blocks a run for v2 ...
        session.execute(text(
            "INSERT INTO reroute_runs (version_id, partition_size, partitions) "
            "SELECT id, 10, 1 FROM boundary_versions WHERE name = 'v1'"
        ))  # fmt: skip
        session.execute(text(
            "INSERT INTO reroute_partitions (run_id, seq, first_id) SELECT max(id), 0, 0 FROM reroute_runs"
        ))  # fmt: skip
    refused = run("--version", "v2", code=1)
    assert "(version 'v1', since the beginning) is unfinished, 0 of 1 partitions done" in refused
    assert "--restart" in refused
    assert "re-attributed to version v2" in run("--version", "v2", "--restart")  # ... until abandoned
    with history.connect() as conn:
        assert conn.execute(text("SELECT status FROM reroute_runs ORDER BY id")).scalars().all() == [
            "abandoned", "done",
        ]  # fmt: skip


def test_a_closed_events_owner_stays_when_its_place_changes(history: Engine):
    with transaction(history) as session:
        closed = session.execute(text(
            "SELECT id, owner_code FROM events WHERE status = 'archived' AND grid_code = :g LIMIT 1"
        ), {"g": WEST + "001"}).one()  # fmt: skip
        session.execute(text("UPDATE events SET grid_code = :g WHERE id = :id"), {"g": WEST + "002", "id": closed.id})
        owner = session.execute(text("SELECT owner_code FROM events WHERE id = :id"), {"id": closed.id}).scalar()
    assert owner == closed.owner_code
