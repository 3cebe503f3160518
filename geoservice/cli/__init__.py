"""The ``geoservice`` command, one module per command group; this module only assembles them."""

from __future__ import annotations

from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from geoservice.cli.city import city_app
from geoservice.cli.coverage import coverage_app
from geoservice.cli.db import db_app
from geoservice.cli.demo import demo
from geoservice.cli.events import events_app
from geoservice.cli.layers import export, import_
from geoservice.cli.notify import notify_app
from geoservice.cli.open311 import open311_app
from geoservice.cli.output import fail
from geoservice.cli.route import route
from geoservice.cli.serve import serve
from geoservice.cli.users import users_app
from geoservice.cli.versions import versions_app


class OneLineErrors(TyperGroup):
    """Every error a command did not turn into a message becomes one line on stderr and exit status 1.

    Commands report what a user can act on themselves (``output.fail``); this catches the rest (a
    database that cannot be reached, a missing PostGIS, a bug) so nobody gets a traceback unless
    they ask for it with ``geoservice --debug …``.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            lines = str(exc).strip().splitlines() or [exc.__class__.__name__]
            raise fail(f"{lines[0]} (geoservice --debug … shows the traceback)") from exc


app = typer.Typer(
    cls=OneLineErrors,
    help="Spatial governance service: grids, police posts, events on PostGIS.",
    no_args_is_help=True,
)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an unexpected error")] = False,
) -> None:
    """Spatial governance service: grids, police posts, events on PostGIS."""


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
app.add_typer(notify_app, name="notify")
app.command()(serve)
