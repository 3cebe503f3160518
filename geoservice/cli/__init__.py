"""The ``geoservice`` command, one module per command group; this module only assembles them."""

from __future__ import annotations

import typer

from geoservice.cli.city import city_app
from geoservice.cli.coverage import coverage_app
from geoservice.cli.db import db_app
from geoservice.cli.demo import demo
from geoservice.cli.events import events_app
from geoservice.cli.layers import export, import_
from geoservice.cli.open311 import open311_app
from geoservice.cli.route import route
from geoservice.cli.serve import serve
from geoservice.cli.users import users_app
from geoservice.cli.versions import versions_app

app = typer.Typer(help="Spatial governance service: grids, police posts, events on PostGIS.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(city_app, name="city")
app.command()(demo)
app.command("import")(import_)
app.command("export")(export)
app.command()(route)
app.add_typer(versions_app, name="versions")
app.add_typer(users_app, name="users")
app.add_typer(events_app, name="events")
app.add_typer(coverage_app, name="coverage")
app.add_typer(open311_app, name="open311")
app.command()(serve)
