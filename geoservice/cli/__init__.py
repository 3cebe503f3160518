"""The ``geoservice`` command, one module per command group; this module only assembles them."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from geoservice.cli.output import fail

# Every command: the module and attribute that hold it, and the line ``geoservice --help`` lists.
# A command's module is imported only when that command runs (or its own --help is asked for), so
# starting one command does not pay for geopandas, folium and spopt that others use; the listed
# line is the first line of the command's own help (tests/geoservice/test_cli.py keeps them equal).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "db": ("geoservice.cli.db", "db_app",
           "The embedded PostGIS cluster (ignored when GEOSERVICE_DATABASE_URL is set)."),
    "city": ("geoservice.cli.city", "city_app", "A city's own data as one pack: check it, load it, export it."),
    "demo": ("geoservice.cli.demo", "demo", "Load the demo city (once; skipped when it is already loaded)."),
    "import": ("geoservice.cli.layers", "import_", "Validate a file and load all of it, or nothing."),
    "export": ("geoservice.cli.layers", "export", "Write a layer in the import contract's columns."),
    "route": ("geoservice.cli.route", "route",
              "Add grid, community, town and station codes (and department) to every row of a file of points."),
    "versions": ("geoservice.cli.versions", "versions_app",
                 "Boundary versions of regions and grids: drafts, edits, validation, publish."),
    "users": ("geoservice.cli.users", "users_app", "People who sign in: roles and scopes."),
    "events": ("geoservice.cli.events", "events_app",
               "The event closed loop: deadline sweep, historic imports, history re-attributed."),
    "coverage": ("geoservice.cli.coverage", "coverage_app",
                 "Coverage of the police-post rings: gap reports and where new posts would help."),
    "open311": ("geoservice.cli.open311", "open311_app",
                "Open311 GeoReport v2 client applications and their API keys."),
    "media": ("geoservice.cli.media", "media_app", "The photo store: staged uploads never attached, removed."),
    "notify": ("geoservice.cli.notify", "notify_app", "Notifications: fan-out and delivery loops, dead letters."),
    "serve": ("geoservice.cli.serve", "serve", "Serve the HTTP API (OpenAPI at /docs)."),
}  # fmt: skip


def load_command(name: str) -> Any:
    """The click command of ``name``, importing its module now."""
    module, attribute, _ = COMMANDS[name]
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        group = typer.main.get_group(found)
        group.name = name
        return group
    single = typer.Typer()
    single.command(name)(found)
    return typer.main.get_command(single)


class Commands(TyperGroup):
    """The commands of ``COMMANDS``, each imported when it runs; their unexpected errors as one line.

    Every error a command did not turn into a message becomes one line on stderr and exit status 1.

    Commands report what a user can act on themselves (``output.fail``); this catches the rest (a
    database that cannot be reached, a missing PostGIS, a bug) so nobody gets a traceback unless
    they ask for it with ``geoservice --debug …``.
    """

    listing = False  # while the help lists the commands: their lines, not their modules

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self.listing:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][2])
        return load_command(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

    def invoke(self, ctx: Any) -> object:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # typer ≥ 0.29 brings its own click
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            lines = str(exc).strip().splitlines() or [exc.__class__.__name__]
            raise fail(f"{lines[0]} (geoservice --debug … shows the traceback)") from exc


app = typer.Typer(
    cls=Commands,
    help="Spatial governance service: grids, police posts, events on PostGIS.",
    no_args_is_help=True,
)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an unexpected error")] = False,
) -> None:
    """Spatial governance service: grids, police posts, events on PostGIS."""


def executable() -> None:
    """``geoservice`` on the command line (pyproject's script): the commands, then an exit without teardown."""
    from geoservice.cli.process import run

    run(app)
