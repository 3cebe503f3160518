"""A fixed set of events on the tiny city, with known times, for the statistics tests.

Rows are drawn once from a seeded generator and inserted as they are; the tests compute every
expected figure from these same Python rows, never from the database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from etl.reference import load_reference_data
from geoservice.infra.database import transaction
from tests.etl.tiny_city import EAST, TOWN, WEST, X0, Y0, D
from tests.geoservice.test_locate_api import load_tiny_city

GRIDS = [WEST + "001", WEST + "002", EAST + "001", EAST + "002"]
CATEGORIES = ["public_order.dispute", "city_management.stall", "environment.noise"]
DEPARTMENTS = ["police", "urban_management", "ecology"]
START = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    id: int
    grid: str
    category: str
    department: str
    status: str
    reported_at: datetime
    dispatched_at: datetime | None
    handled_at: datetime | None
    handle_due_at: datetime | None
    reopen_count: int
    satisfaction: int | None

    @property
    def community(self) -> str:
        return self.grid[:12]


def make_rows(n: int = 80, seed: int = 7) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        reported = START + timedelta(hours=rng.uniform(0, 24 * 75))  # March to mid-May
        category = rng.choice(CATEGORIES)
        stage = rng.random()
        dispatched = reported + timedelta(hours=rng.uniform(0.2, 5)) if stage > 0.15 else None
        handled = dispatched + timedelta(hours=rng.uniform(1, 80)) if dispatched and stage > 0.3 else None
        due = dispatched + timedelta(hours=48) if dispatched else None
        reopened = rng.choice([0, 0, 0, 1, 2]) if handled else 0
        satisfaction = rng.randint(1, 5) if handled and stage > 0.5 else None
        status = "evaluated" if satisfaction else "handled" if handled else "dispatched" if dispatched else "reported"
        rows.append(Row(i, rng.choice(GRIDS), category, DEPARTMENTS[CATEGORIES.index(category)], status,
                        reported, dispatched, handled, due, reopened, satisfaction))  # fmt: skip
    return rows


def load_stats_city(engine: Engine, rows: list[Row], population: dict[str, float] | None = None) -> None:
    """The tiny city in force since 2026-01-01, reference data, the rows, and optional population points."""
    load_tiny_city(engine, at="2026-01-01T00:00:00+08:00")
    with transaction(engine) as session:
        load_reference_data(session)
        for r in rows:
            col = GRIDS.index(r.grid)
            session.execute(
                text(
                    "INSERT INTO events (id, geom, category_code, status, occurred_at, reported_at, grid_code, "
                    "community_code, town_code, department_code, dispatched_at, handled_at, handle_due_at, "
                    "reopen_count, satisfaction) VALUES (:id, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :cat, :status, "
                    ":rep, :rep, :grid, :community, :town, :dept, :dis, :han, :due, :reopen, :sat)"
                ),
                {"id": r.id, "x": X0 + (col + 0.5) * D, "y": Y0 + 0.5 * D, "cat": r.category, "status": r.status,
                 "rep": r.reported_at, "grid": r.grid, "community": r.community, "town": TOWN, "dept": r.department,
                 "dis": r.dispatched_at, "han": r.handled_at, "due": r.handle_due_at, "reopen": r.reopen_count,
                 "sat": r.satisfaction},  # fmt: skip
            )
        for community, people in (population or {}).items():
            x = X0 + (0.5 if community == WEST else 2.5) * D
            session.execute(
                text("INSERT INTO population (count, geom) VALUES (:c, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                {"c": people, "x": x, "y": Y0 + 0.5 * D},
            )
