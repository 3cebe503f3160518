"""``geoservice media …``: the photo store's upkeep.

``sweep`` removes staged files (the bytes of an upload whose transaction failed, or that a crash left
between staging and publishing) older than ``GEOSERVICE_MEDIA_STAGED_MAX_AGE_S``. The server does the
same with its deadline sweep; this is for deployments that run the sweep from cron, or whose server
runs with ``GEOSERVICE_EVENT_SWEEP_S=0``. Running it beside the server, or twice, is harmless.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from geoservice.cli.output import console, fail
from geoservice.media.settings import MediaSettings
from geoservice.media.store import open_store

media_app = typer.Typer(help="The photo store: staged uploads never attached, removed.", no_args_is_help=True)


@media_app.command("sweep")
def sweep(
    max_age: Annotated[
        float | None,
        typer.Option("--max-age", min=60, help="seconds; default GEOSERVICE_MEDIA_STAGED_MAX_AGE_S (86400)"),
    ] = None,
) -> None:
    """Remove staged photo files older than the maximum age; attached photos are never touched."""
    try:
        settings = MediaSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "".join(f"GEOSERVICE_{str(part).upper()}: " for part in first["loc"][:1])
        raise fail(f"media settings: {name}{first['msg']}") from exc
    age = settings.media_staged_max_age_s if max_age is None else max_age
    store = open_store(settings)
    try:
        removed = store.sweep_staged(age)
    except Exception as exc:  # an unreachable S3 endpoint, a directory we may not write: one line, what and where
        raise fail(f"cannot sweep the media store ({where_of(settings)}): {exc}") from exc
    console.print(f"removed {removed} staged files older than {age:g} s from the {settings.media_store} store "
                  f"({where_of(settings)})", highlight=False)  # fmt: skip


def where_of(settings: MediaSettings) -> str:
    """The store as a person finds it: the directory, or the bucket at its endpoint."""
    if settings.media_store == "s3":
        return f"bucket {settings.media_s3_bucket} at {settings.media_s3_endpoint}"
    return str(settings.local_dir)
