"""History under new boundaries: closed events re-attributed to a boundary version, for statistics.

Statistics count events by the grid, community and town codes stored on them (``geoservice.stats``),
and scopes read the same columns. After a redraw, history keeps the codes of the version that
placed it, so the new units' figures would start empty. ``geoservice events reroute --version V``
places every closed event (rejected, archived, evaluated, merged; ``--since``: reported since then)
again with V's router and, where they differ, writes V's grid, community, town and station codes
and ``boundary_version_id = V`` (so ``boundary_version_id`` names the version that last placed the
event; an event whose place V does not change keeps its row untouched: an UPDATE costs about
0.1 ms a row with the events table's 15 indexes, and a redraw moves a few percent). Nothing else:
the department that handled an event, its rule, its owner (the ``events_owner_follows_place``
trigger skips closed events, migration 0012), its log, ``row_version`` and ``updated_at`` are
history, and no log row is written, so nobody is notified.
Open events are re-routed by the publish itself (``boundaries.reroute``); an event still open now
is re-attributed by a later run once it closes.

A run is resumable. It is a ``reroute_runs`` row and partitions of consecutive event ids
(``reroute_partitions``, ``partition_size`` eligible events each when the run starts; the ranges
cover every id, so an event that closes later is still found). Each partition is read, routed and
written in one transaction that also marks it done, after locking its row (``SKIP LOCKED``): a
killed worker or client rolls back only the partition it was writing, a done partition is never
written again, and two processes on the same run share the partitions. Running the command again
resumes the unfinished partitions of the run that is still running; ``--restart`` abandons it.
The router is built once per process (by the caller, from the version), never per partition.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from etl.load import copy_rows
from geoservice.boundaries.versions import VersionError, VersionNotFound
from geoservice.infra.database import transaction
from geoservice.routing.bulk import route_points
from geoservice.routing.router import Router

CLOSED = ("rejected", "archived", "evaluated", "merged")
PLACE = ("grid_code", "community_code", "town_code", "station_code")
RUN_LOCK = 21_0012  # advisory lock: one process at a time starts, resumes or abandons a run


@dataclass(frozen=True)
class Run:
    """A re-attribution run as the command reports it."""

    id: int
    version_id: int
    version_name: str
    since: datetime | None
    status: str
    partition_size: int
    partitions: int
    done: int
    events: int
    moved: int
    outside: int
    resumed: bool = False

    @property
    def pending(self) -> int:
        return self.partitions - self.done


@dataclass(frozen=True)
class PartitionDone:
    """One partition written: how many closed events it held, how many changed place, how many fell outside."""

    seq: int
    events: int
    moved: int
    outside: int


def start_run(
    session: Session,
    version: str,
    *,
    since: datetime | None,
    partition_size: int,
    engine: str,
    restart: bool = False,
    started_by: str = "",
) -> Run:
    """Resume the running run for (``version``, ``since``), or start one; ``restart`` abandons any running run.

    A running run for another version or ``since`` is refused (two runs would fight over the same
    events): resume it, or ``--restart``. A draft is refused: statistics follow versions that were
    or are in force.
    """
    if since is not None and since.tzinfo is None:
        raise VersionError("--since needs a time zone (e.g. 2025-01-01T00:00:00+08:00)")
    target = session.execute(
        text("SELECT id, status::text AS status FROM boundary_versions WHERE name = :n"), {"n": version}
    ).first()
    if target is None:
        raise VersionNotFound(f"no boundary version called {version!r}")
    if target.status == "draft":
        raise VersionError(f"version {version!r} is a draft; re-attribute history to a published version")
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RUN_LOCK})
    running = session.execute(
        text("SELECT id, version_id, since FROM reroute_runs WHERE status = 'running' FOR UPDATE")
    ).first()
    if running is not None and restart:
        session.execute(text("UPDATE reroute_runs SET status = 'abandoned' WHERE id = :id"), {"id": running.id})
    elif running is not None and (running.version_id, running.since) == (target.id, since):
        return run_status(session, running.id, resumed=True)
    elif running is not None:
        other = run_status(session, running.id)
        raise VersionError(
            f"run {other.id} (version {other.version_name!r}, since {_since(other.since)}) is unfinished, "
            f"{other.done} of {other.partitions} partitions done: run it again with the same --version and "
            "--since to resume it, or add --restart to abandon it"
        )
    run_id = session.execute(
        text(
            "INSERT INTO reroute_runs (version_id, since, engine, partition_size, started_by) "
            "VALUES (:v, :since, :engine, :size, :by) RETURNING id"
        ),
        {"v": target.id, "since": since, "engine": engine, "size": partition_size, "by": started_by},
    ).scalar_one()
    # Ranges of ``partition_size`` eligible events, laid end to end from id 0 to no end.
    session.execute(
        text(
            """
            INSERT INTO reroute_partitions (run_id, seq, first_id, end_id)
            SELECT :run, n, CASE WHEN n = 0 THEN 0 ELSE first_id END,
                   lead(first_id) OVER (ORDER BY n)
              FROM (SELECT n, min(id) AS first_id
                      FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / :size AS n
                              FROM events
                             WHERE status = ANY(:closed) AND (CAST(:since AS timestamptz) IS NULL
                                   OR reported_at >= CAST(:since AS timestamptz))) AS eligible
                     GROUP BY n) AS parts
            """
        ),
        {"run": run_id, "size": partition_size, "closed": list(CLOSED), "since": since},
    )
    session.execute(
        text("UPDATE reroute_runs SET partitions = (SELECT count(*) FROM reroute_partitions WHERE run_id = :r) "
             "WHERE id = :r"),
        {"r": run_id},
    )  # fmt: skip
    return finish_if_done(session, run_id)


def pending_partitions(session: Session, run_id: int) -> list[int]:
    """The partitions of ``run_id`` not done yet, in order."""
    rows = session.execute(
        text("SELECT seq FROM reroute_partitions WHERE run_id = :r AND done_at IS NULL ORDER BY seq"), {"r": run_id}
    )
    return list(rows.scalars())


def reattribute_partition(engine: Engine, router: Router, run_id: int, seq: int) -> PartitionDone | None:
    """Re-attribute the closed events of one partition and mark it done, in one transaction.

    None when there is nothing to do here: the partition is done, another process holds it, or its
    run was abandoned meanwhile. ``router`` must be the run's version (checked).
    """
    with transaction(engine) as session:
        part = session.execute(
            text(
                "SELECT p.first_id, p.end_id, r.version_id, r.since FROM reroute_partitions p "
                "JOIN reroute_runs r ON r.id = p.run_id "
                "WHERE p.run_id = :r AND p.seq = :s AND p.done_at IS NULL AND r.status = 'running' "
                "FOR UPDATE OF p SKIP LOCKED"
            ),
            {"r": run_id, "s": seq},
        ).first()
        if part is None:
            return None
        # The run row is shared-locked, so ``--restart`` waits for the partitions being written.
        session.execute(text("SELECT 1 FROM reroute_runs WHERE id = :r FOR SHARE"), {"r": run_id})
        if part.version_id != router.version_id:
            raise VersionError(f"run {run_id} re-attributes to version {part.version_id}, not {router.version_id}")
        done = _reattribute(session, router, part.first_id, part.end_id, part.since)
        session.execute(
            text(
                "UPDATE reroute_partitions SET done_at = clock_timestamp(), events = :e, moved = :m, outside = :o, "
                "worker = :w WHERE run_id = :r AND seq = :s"
            ),
            {"e": done[0], "m": done[1], "o": done[2], "w": socket.gethostname(), "r": run_id, "s": seq},
        )
    return PartitionDone(seq, *done)


def _reattribute(
    session: Session, router: Router, first_id: int, end_id: int | None, since: datetime | None
) -> tuple[int, int, int]:
    rows = session.execute(
        text(
            "SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat, grid_code, community_code, town_code, station_code "
            "FROM events WHERE id >= :first AND (CAST(:end AS bigint) IS NULL OR id < :end) "
            "AND status = ANY(:closed) AND (CAST(:since AS timestamptz) IS NULL "
            "OR reported_at >= CAST(:since AS timestamptz)) ORDER BY id"
        ),
        {"first": first_id, "end": end_id, "closed": list(CLOSED), "since": since},
    ).all()
    if not rows:
        return 0, 0, 0
    ids = np.array([r.id for r in rows], dtype=np.int64)
    lon = np.array([r.lon for r in rows], dtype=float)
    lat = np.array([r.lat for r in rows], dtype=float)
    routed = route_points(router, lon, lat)
    new = {f: routed[f].to_numpy(dtype=object) for f in PLACE}
    old = {f: np.array([getattr(r, f) or "" for r in rows], dtype=object) for f in PLACE}
    moved = np.logical_or.reduce([old[f] != new[f] for f in PLACE])
    write = np.flatnonzero(moved)  # an UPDATE costs ~0.1 ms a row (15 indexes): only places that change
    outside = int((new["grid_code"] == "").sum())
    if write.size:
        session.execute(
            text(
                "CREATE TEMP TABLE reattributed (id bigint PRIMARY KEY, grid_code text, community_code text, "
                "town_code text, station_code text) ON COMMIT DROP"
            )
        )
        copy_rows(
            session, "reattributed", ["id", *PLACE],
            ((int(ids[k]), *(new[f][k] or None for f in PLACE)) for k in write),
        )  # fmt: skip
        session.execute(
            text(
                "UPDATE events e SET grid_code = r.grid_code, community_code = r.community_code, "
                "town_code = r.town_code, station_code = r.station_code, boundary_version_id = :v "
                "FROM reattributed r WHERE e.id = r.id AND e.status = ANY(:closed)"
            ),
            {"v": router.version_id, "closed": list(CLOSED)},
        )
        session.execute(text("DROP TABLE reattributed"))
    return len(rows), int(moved.sum()), outside


def finish_if_done(session: Session, run_id: int) -> Run:
    """Mark the run done when no partition is left; its state either way."""
    session.execute(
        text(
            "UPDATE reroute_runs SET status = 'done', finished_at = now() WHERE id = :r AND status = 'running' "
            "AND NOT EXISTS (SELECT 1 FROM reroute_partitions WHERE run_id = :r AND done_at IS NULL)"
        ),
        {"r": run_id},
    )
    return run_status(session, run_id)


def run_status(session: Session, run_id: int, *, resumed: bool = False) -> Run:
    """A run with its counts so far."""
    row = session.execute(
        text(
            "SELECT r.id, r.version_id, v.name AS version_name, r.since, r.status, r.partition_size, r.partitions, "
            "count(p.done_at) AS done, coalesce(sum(p.events), 0) AS events, coalesce(sum(p.moved), 0) AS moved, "
            "coalesce(sum(p.outside), 0) AS outside "
            "FROM reroute_runs r JOIN boundary_versions v ON v.id = r.version_id "
            "LEFT JOIN reroute_partitions p ON p.run_id = r.id WHERE r.id = :r GROUP BY r.id, v.name"
        ),
        {"r": run_id},
    ).one()
    return Run(**row._mapping, resumed=resumed)


def run_locally(
    engine: Engine, router: Router, run_id: int, on_done: Callable[[PartitionDone | None], None] | None = None
) -> list[tuple[int, str]]:
    """Every pending partition of ``run_id`` in this process, one transaction each; the failures (seq, why).

    A failing partition is rolled back and left pending; the others go on, and a rerun retries it.
    """
    with transaction(engine) as session:
        pending = pending_partitions(session, run_id)
    failures: list[tuple[int, str]] = []
    for seq in pending:
        try:
            done = reattribute_partition(engine, router, run_id, seq)
        except Exception as exc:  # noqa: BLE001 - reported per partition; the partition stays pending
            failures.append((seq, first_line(exc)))
            continue
        if on_done is not None:
            on_done(done)
    return failures


def first_line(exc: BaseException) -> str:
    """An exception as one line for the command's report: its type and first line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _since(since: datetime | None) -> str:
    return since.isoformat() if since else "the beginning"
