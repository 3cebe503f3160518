"""``geoservice notify …``: run the notification loops outside the API, and look after dead letters.

``run`` is what the API process does in threads unless ``GEOSERVICE_NOTIFY_IN_SERVER=false``: fan out
queued steps into inboxes and the outbox, and deliver the outbox. Any number may run at once (rows
are claimed with ``SKIP LOCKED``); killing one loses nothing: its work is rows, taken up by the next.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from geoservice.cli.output import console, fail
from geoservice.errors import NotFound
from geoservice.infra.database import open_database, transaction
from geoservice.notifications import fanout, outbox
from geoservice.notifications.runner import NotifyLoops
from geoservice.notifications.settings import NotifySettings

notify_app = typer.Typer(help="Notifications: fan-out and delivery loops, dead letters.", no_args_is_help=True)


@notify_app.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="fan out and deliver what is due now, then stop")] = False,
) -> None:
    """Fan out queued steps and deliver the outbox until stopped (SIGTERM or Ctrl-C)."""
    settings = NotifySettings()
    engine = open_database()
    if once:
        gateways = outbox.Gateways.from_settings(settings)
        steps = fanout.drain(engine, settings)
        sent = outbox.drain(engine, gateways, settings)
        console.print(f"{steps} steps fanned out, {sent} deliveries tried", highlight=False)
        return
    loops = NotifyLoops(engine, settings)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        loops.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loops.start()
    console.print("notification loops running", highlight=False)
    loops.wait()


@notify_app.command("dead-letters")
def dead_letters(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100) -> None:
    """Deliveries that ran out of attempts: id, event, channel, target, attempts, last error."""
    with transaction(open_database()) as session:
        rows = outbox.dead_letters(session, limit)
    for row in rows:
        console.print(
            f"{row['id']}\tevent {row['event_id']}\t{row['channel']}\t{row['target']}\t"
            f"{row['attempts']} attempts\t{row['dead_at']:%Y-%m-%dT%H:%M:%S%z}\t{row['last_error'] or ''}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"{len(rows)} dead letters", highlight=False)


@notify_app.command("retry")
def retry(delivery_id: Annotated[int, typer.Argument(min=1, help="the id dead-letters shows")]) -> None:
    """Give a dead delivery a fresh set of attempts, due now."""
    try:
        with transaction(open_database()) as session:
            outbox.retry(session, delivery_id)
    except NotFound as exc:
        raise fail(str(exc)) from exc
    console.print(f"delivery {delivery_id} will be tried again", highlight=False)
