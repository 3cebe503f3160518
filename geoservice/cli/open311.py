"""``geoservice open311``: the client applications allowed to post service requests."""

from __future__ import annotations

import typer

from geoservice.cli.output import console, err
from geoservice.infra.database import open_database, transaction
from geoservice.open311.clients import ClientError, add_client, list_clients, set_enabled

open311_app = typer.Typer(help="Open311 GeoReport v2 client applications and their API keys.", no_args_is_help=True)


@open311_app.command("add-client")
def add(name: str) -> None:
    """Register a client application and print its api_key (shown this once; only a digest is kept)."""
    try:
        with transaction(open_database()) as session:
            key = add_client(session, name)
    except ClientError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    console.print(f"api_key for {name}: {key}", highlight=False)


@open311_app.command("list-clients")
def show() -> None:
    """Every client application and whether it is enabled."""
    with transaction(open_database()) as session:
        for client in list_clients(session):
            state = "enabled" if client["enabled"] else "disabled"
            console.print(f"{client['name']}\t{state}\t{client['created_at']:%Y-%m-%d}", highlight=False)


@open311_app.command("disable-client")
def disable(name: str, enable: bool = typer.Option(False, "--enable", help="enable it again instead")) -> None:
    """Stop (or restart) a client's key at once."""
    try:
        with transaction(open_database()) as session:
            set_enabled(session, name, enable)
    except ClientError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    console.print(f"{name} {'enabled' if enable else 'disabled'}", highlight=False)
