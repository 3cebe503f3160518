"""``geoservice events …``: the deadline sweep, and historic events loaded (and routed) in bulk.

``reroute`` re-attributes closed events to a boundary version for statistics, in resumable partitions
(``geoservice.boundaries.history``), in this process or on a Dask cluster.

``sweep`` is what the server runs every ``GEOSERVICE_EVENT_SWEEP_S`` seconds; run from cron it does
the same, and running it twice changes nothing the second time. ``import`` validates a file, loads
all of it or nothing, places each event in the boundaries in force when it occurred, decides its
department by the routing rules; each new event's log gets its report and every step its history
columns record (``etl.load``).
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from etl.load import ImportRejected, import_layer
from etl.readers import ReadError
from geoservice.cli.output import console, err, fail, print_rejected
from geoservice.cli.route import RoutingEngine
from geoservice.events.supervision import sweep_supervision
from geoservice.events.sweep import sweep_deadlines
from geoservice.infra.database import open_database, transaction
from geoservice.routing.bulk_events import route_imported_events
from geoservice.settings import EventSettings, RoutingSettings

events_app = typer.Typer(
    help="The event closed loop: deadline sweep, historic imports, history re-attributed.", no_args_is_help=True
)


@events_app.command("sweep")
def sweep(
    now: Annotated[datetime | None, typer.Option(help="sweep as of this instant (with a zone); default now")] = None,
) -> None:
    """Escalate events whose accept or handling deadline passed, or whose supervision order went unanswered; once."""
    if now is not None and now.tzinfo is None:
        raise fail("--now needs a time zone, e.g. 2026-11-24T09:00:00+08:00")
    engine = open_database()
    with transaction(engine) as session:
        result = sweep_deadlines(session, now, EventSettings())
    with transaction(engine) as session:  # its own transaction, as in the server's periodic sweep
        late = sweep_supervision(session, now or datetime.now(UTC))
    console.print(
        f"{result.breaches} new deadline breaches: {result.escalated} escalated, "
        f"{result.at_city_level} already at city level; {result.warnings} new warning colours; "
        f"{len(late)} late supervision orders escalated",
        highlight=False,
    )


@events_app.command("import")
def import_events(
    path: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, Shapefile or CSV (lon, lat columns)")],
    crs: Annotated[str | None, typer.Option(help="wgs84, cgcs2000, gcj02, bd09 or EPSG:n")] = None,
    fix: Annotated[bool, typer.Option(help="repair invalid geometries with make_valid")] = False,
) -> None:
    """Load historic events, all or nothing, routed in bulk; events with an ``id`` are stored once."""
    engine = open_database()
    try:
        with transaction(engine) as session:
            report = import_layer(session, "events", path, crs=crs, fix=fix)
            placed, routed = route_imported_events(session, RoutingSettings())
    except ImportRejected as exc:
        print_rejected(exc)
        raise fail(str(exc)) from exc
    except (ReadError, ValueError) as exc:
        raise fail(str(exc)) from exc
    console.print(f"loaded {report.count:,} events: {placed:,} placed in grids, {routed:,} given a department",
                  highlight=False)  # fmt: skip


@events_app.command("reroute")
def reroute(
    version: Annotated[str, typer.Option(help="the boundary version (published or retired) to re-attribute to")],
    since: Annotated[
        datetime | None, typer.Option(help="only events reported since this instant (with a zone); default all")
    ] = None,
    engine: Annotated[RoutingEngine, typer.Option(help="local: this process; dask: a Dask cluster")] = (
        RoutingEngine.local
    ),
    workers: Annotated[int, typer.Option(min=1, max=256, help="dask: LocalCluster worker processes")] = 2,
    scheduler: Annotated[str | None, typer.Option(help="dask: the scheduler's address; default a LocalCluster")] = None,
    partition_size: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="closed events per partition (one transaction each)")
    ] = 100_000,
    restart: Annotated[bool, typer.Option(help="abandon the unfinished run and start again")] = False,
) -> None:
    """Re-attribute closed events to boundary version V (grid, community, town, station), for statistics.

    Resumable: each partition is written and marked done in one transaction; running the same
    command again continues where a killed run stopped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from geoservice.boundaries.history import finish_if_done, pending_partitions, run_locally, start_run
    from geoservice.boundaries.versions import VersionError
    from geoservice.routing.loader import load_router

    if engine == RoutingEngine.local and scheduler:
        raise fail("--scheduler goes with --engine dask")
    database = open_database()
    try:
        with transaction(database) as session:
            run = start_run(session, version, since=since, partition_size=partition_size, engine=engine.value,
                            restart=restart, started_by=getpass.getuser())  # fmt: skip
            pending = pending_partitions(session, run.id)
            router = load_router(session, run.version_id, RoutingSettings()) if pending else None
    except VersionError as exc:
        raise fail(str(exc)) from exc
    verb = "resuming" if run.resumed else "starting"
    err.print(f"{verb} run {run.id}: {len(pending)} of {run.partitions} partitions to do", highlight=False)
    failures: list[tuple[int, str]] = []
    if router is not None:
        with Progress(
            TextColumn(f"run {run.id}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        ) as bar:
            task = bar.add_task("partitions", total=len(pending))
            advance = lambda _done: bar.advance(task)  # noqa: E731
            if engine == RoutingEngine.dask:
                failures = _on_dask(database, router, run.id, pending, scheduler, workers, advance)
            else:
                failures = run_locally(database, router, run.id, advance)
    with transaction(database) as session:
        run = finish_if_done(session, run.id)
    console.print(
        f"run {run.id} ({run.status}): {run.done} of {run.partitions} partitions, {run.events:,} closed events "
        f"re-attributed to version {run.version_name}: {run.moved:,} changed place, {run.outside:,} outside every grid",
        highlight=False,
    )
    if failures:
        for seq, why in failures:
            err.print(f"  partition {seq}: {why}", highlight=False, markup=False)
        raise fail(f"{len(failures)} partition(s) failed and stay pending; run the same command again to resume")


def _on_dask(database, router, run_id, pending, scheduler, workers, advance) -> list[tuple[int, str]]:  # noqa: ANN001
    from geoservice.boundaries.history_dask import run_on_dask
    from geoservice.routing.distributed import dask_client

    try:
        with dask_client(scheduler, workers) as client:
            return run_on_dask(client, database, router, run_id, pending, advance)
    except OSError as exc:  # the scheduler cannot be reached
        raise fail(f"dask scheduler {scheduler}: {exc}") from exc
