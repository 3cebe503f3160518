"""``geoservice demo``: load the demo city once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from geoservice.boundaries.settings import BoundarySettings
from geoservice.cli.output import console, spinner
from geoservice.infra.database import open_database
from geoservice.settings import DatabaseSettings, RoutingSettings


def demo(
    boundary: Annotated[Path | None, typer.Option(help="County boundary (GeoJSON); default 如皋市")] = None,
    crs: Annotated[str, typer.Option(help="CRS of --boundary")] = "gcj02",
    adcode: Annotated[str, typer.Option(help="6-digit county code of --boundary")] = "320682",
    seed: int = 320682,
    grids: Annotated[int, typer.Option(help="about how many grids")] = 1500,
    events: Annotated[int, typer.Option(help="historic events over 12 months")] = 50_000,
) -> None:
    """Load the demo city (once; skipped when it is already loaded)."""
    from geoservice.city.demo import DEMO_BOUNDARY, DemoOptions, demo_loaded, demo_users, load_demo

    engine = open_database()
    if demo_loaded(engine):
        console.print("demo city already loaded")
        return
    options = DemoOptions(
        boundary=boundary or DEMO_BOUNDARY, boundary_crs=crs, adcode=adcode, seed=seed,
        n_grids=grids, n_communities=max(1, grids // 5), n_events=events,
    )  # fmt: skip
    with spinner() as progress:
        task = progress.add_task("demo city", total=None)
        counts = load_demo(
            engine, options, step=lambda s: progress.update(task, description=s),
            routing=RoutingSettings(), boundaries=BoundarySettings(), pack_dir=DatabaseSettings().home / "demo-pack",
        )  # fmt: skip
    console.print(f"the demo city's pack is in {DatabaseSettings().home / 'demo-pack'} (geoservice city load reads it)")
    table = Table("layer", "rows", title="demo city loaded")
    for layer, count in counts.items():
        table.add_row(layer, f"{count:,}")
    console.print(table)
    users = Table("username", "password", "role", "scope", title="demo users — change these passwords")
    for user in demo_users(adcode):
        users.add_row(user.username, user.password, user.role, user.region_code or user.department_code or "")
    console.print(users)
