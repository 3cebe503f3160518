"""``geoservice city check|load|export DIR``: a city's own data as one pack (docs/city-pack.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from etl.load import ImportRejected
from etl.readers import ReadError
from geoservice.boundaries.settings import BoundarySettings
from geoservice.boundaries.versions import VersionError
from geoservice.cli.output import console, err, fail, print_rejected, spinner
from geoservice.cli.versions import prepare_router
from geoservice.errors import DomainError
from geoservice.infra.database import open_database, transaction
from geoservice.settings import DatabaseSettings, RoutingSettings

city_app = typer.Typer(help="A city's own data as one pack: check it, load it, export it.", no_args_is_help=True)
PackDir = Annotated[Path, typer.Argument(help="the pack's directory (see docs/city-pack.md)")]
FixOption = Annotated[
    bool,
    typer.Option(
        help="repair invalid geometries (make_valid) and give gaps/overlaps under GEOSERVICE_SLIVER_FIX_MAX_M2 "
        "to the neighbour with the longest shared edge; every change is listed"
    ),
]


@city_app.command()
def check(directory: PackDir, fix: FixOption = False) -> None:
    """Report every fault of every file of the pack; write nothing."""
    from geoservice.city.load import check_directory

    pack, checked = check_directory(directory, BoundarySettings(), fix=fix)
    for repair in checked.repairs:
        console.print(f"  repaired {repair}", highlight=False, markup=False)
    for fault in checked.faults:
        err.print(f"  {fault}", highlight=False, markup=False)
    if not checked.ok:
        files = len({f.file for f in checked.faults})
        raise fail(f"{len(checked.faults)} fault(s) in {files} file(s) of {directory}; nothing was written")
    layers = ", ".join(f"{layer} {len(read.frame):,}" for layer, read in pack.layers.items())
    tables = ", ".join(f"{table} {len(frame):,}" for table, frame in pack.tables.items())
    console.print(f"{directory}: no faults ({layers}; {tables})", highlight=False)


@city_app.command()
def load(
    directory: PackDir,
    draft: Annotated[bool, typer.Option(help="leave the boundaries as a draft instead of publishing them")] = False,
    fix: FixOption = False,
    passwords: Annotated[
        Path | None, typer.Option(help="where one-time passwords go (mode 0600); default under GEOSERVICE_HOME")
    ] = None,
    at: Annotated[datetime | None, typer.Option(help="boundaries in force from (ISO 8601); default now")] = None,
) -> None:
    """Check the pack and load all of it in one transaction, or nothing."""
    from geoservice.city.load import PackRejected, load_pack

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    passwords = passwords or DatabaseSettings().home / f"one-time-passwords-{stamp}.tsv"
    engine = open_database()
    try:
        with spinner() as progress:
            task = progress.add_task(f"loading {directory}", total=None)
            report = load_pack(
                engine, directory, routing=RoutingSettings(), boundaries=BoundarySettings(),
                passwords_file=passwords, draft=draft, fix=fix, effective_from=at,
                step=lambda s: progress.update(task, description=s),
            )  # fmt: skip
    except PackRejected as exc:
        for fault in exc.faults:
            err.print(f"  {fault}", highlight=False, markup=False)
        raise fail(str(exc)) from exc
    except ImportRejected as exc:
        print_rejected(exc)
        raise fail(str(exc)) from exc
    except (DomainError, ReadError, VersionError, ValueError) as exc:
        raise fail(str(exc)) from exc
    for repair in report.repairs:
        console.print(f"  repaired {repair}", highlight=False, markup=False)
    table = Table("layer / table", "rows", title=f"{report.city.name} ({report.city.adcode}) loaded")
    for name, count in report.counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    if report.published:
        console.print(f"boundary version {report.version} published and in force")
        prepare_router(engine, report.version)
    else:
        console.print(f"boundary version {report.version} left as a draft; publish it with: "
                      f"geoservice versions publish {report.version}")  # fmt: skip
    if report.passwords_file is not None:
        console.print(f"{report.one_time_passwords} one-time password(s) written to {report.passwords_file} "
                      "(mode 0600); each must be changed at the first sign-in")  # fmt: skip


@city_app.command()
def export(
    directory: PackDir,
    version: Annotated[str | None, typer.Option(help="boundary version; default: the one in force")] = None,
) -> None:
    """Write the city as a pack that ``city load`` reads back."""
    import getpass

    from geoservice.city.export import export_pack

    try:
        with transaction(open_database()) as session:
            counts = export_pack(session, directory, version, reader=f"cli:{getpass.getuser()}")
    except (DomainError, VersionError, ValueError) as exc:
        raise fail(str(exc)) from exc
    console.print(f"wrote {directory}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), highlight=False)
