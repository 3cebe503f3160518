"""``geoservice events …``: the deadline sweep, and historic events loaded (and routed) in bulk.

``sweep`` is what the server runs every ``GEOSERVICE_EVENT_SWEEP_S`` seconds; run from cron it does
the same, and running it twice changes nothing the second time. ``import`` validates a file, loads
all of it or nothing, places each event in the boundaries in force when it occurred, decides its
department by the routing rules; each new event's log gets its report and every step its history
columns record (``etl.load``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from etl.load import ImportRejected, import_layer
from etl.readers import ReadError
from geoservice.cli.output import console, fail, print_rejected
from geoservice.events.supervision import sweep_supervision
from geoservice.events.sweep import sweep_deadlines
from geoservice.infra.database import open_database, transaction
from geoservice.routing.bulk_events import route_imported_events
from geoservice.settings import EventSettings, RoutingSettings

events_app = typer.Typer(help="The event closed loop: deadline sweep, historic imports.", no_args_is_help=True)

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
