"""The people behind each audience of ``rules.RULES``: one function per audience, all of the same shape.

Each takes the session and the event (a mapping of its columns) and returns the active accounts it
names. A new audience (an event's ``owner``) is one more function and one more entry in ``AUDIENCES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import region_prefix
from geoservice.events.followers import merged_reporters, subscribers_of


@dataclass(frozen=True)
class Recipient:
    """An account to notify, with the phone the SMS channel uses ('' when it has none).

    ``follower``: told as a member of the public (the reporter, a subscriber), so told nothing the
    public may not read: no private note, no description of someone else's report, no SMS.
    """

    user_id: int
    username: str
    phone: str
    follower: bool = False


Event = Mapping[str, Any]
Audience = Callable[[Session, Event], list[Recipient]]
T = TypeVar("T")
ACTIVE = "SELECT id, username, phone FROM users u WHERE NOT u.disabled AND "


def _people(session: Session, where: str, params: dict[str, Any]) -> list[Recipient]:
    rows = session.execute(text(ACTIVE + where + " ORDER BY u.id"), params).all()
    return [Recipient(r.id, r.username, r.phone or "") for r in rows]


def handler(session: Session, event: Event) -> list[Recipient]:
    """The handler named on the event by its dispatch."""
    if not event.get("handler_username"):
        return []
    return _people(session, "u.username = :name", {"name": event["handler_username"]})


def department(session: Session, event: Event) -> list[Recipient]:
    """Every active handler of the event's department."""
    if not event.get("department_code"):
        return []
    return _people(session, "u.role = 'handler' AND u.department_code = :d", {"d": event["department_code"]})


def grid_workers(session: Session, event: Event) -> list[Recipient]:
    """The grid workers who serve the event's grid (``user_grids``)."""
    if not (grid := event.get("grid_code")):
        return []
    return _remembered(session, "grid_workers", grid, _grid_workers_of)


def _grid_workers_of(session: Session, grids: list[str]) -> dict[str, list[Recipient]]:
    rows = session.execute(
        text("SELECT g.grid_code, u.id, u.username, u.phone FROM user_grids g JOIN users u ON u.id = g.user_id "
             "WHERE g.grid_code = ANY(:grids) AND NOT u.disabled AND u.role = 'grid_worker' ORDER BY u.id"),
        {"grids": grids},
    )  # fmt: skip
    found: dict[str, list[Recipient]] = {grid: [] for grid in grids}
    for r in rows:
        found[r.grid_code].append(Recipient(r.id, r.username, r.phone or ""))
    return found


# The depth of a region prefix (``auth.scope.region_prefix``) at each escalation level. At grid level the
# unit that dispatches is the grid's community workstation (a grid has workers, not dispatchers), so a
# dispatcher scoped to the grid itself or to its community hears; at city level any county-or-wider one.
LEVEL_DEPTHS = {"grid": (12, 15), "community": (12,), "town": (9,), "city": (2, 4, 6)}


def unit_dispatchers(session: Session, event: Event) -> list[Recipient]:
    """The dispatchers of the unit at the event's escalation level whose region holds the event."""
    place = event.get("grid_code") or event.get("community_code") or event.get("town_code")
    if not place:
        return []
    depths = LEVEL_DEPTHS.get(event.get("escalation_level") or "grid", ())
    return [person for prefix, person in _per_transaction(session, "dispatchers", _dispatchers)
            if len(prefix) in depths and place.startswith(prefix)]  # fmt: skip


def _dispatchers(session: Session) -> list[tuple[str, Recipient]]:
    rows = session.execute(
        text("SELECT id, username, phone, region_code FROM users u WHERE NOT u.disabled "
             "AND u.role = 'dispatcher' AND u.region_code IS NOT NULL ORDER BY u.id")
    ).all()  # fmt: skip
    return [(region_prefix(r.region_code), Recipient(r.id, r.username, r.phone or "")) for r in rows]


def _per_transaction(session: Session, name: str, load: Callable[[Session], T]) -> T:
    """``load(session)``, read once per transaction: a fan-out batch asked the same for many of its steps."""
    held = _memo(session, "once")
    if name not in held:
        held[name] = load(session)
    return held[name]


def _memo(session: Session, name: str) -> dict[Any, Any]:
    """A dictionary that lives as long as the session's current transaction.

    Kept in ``session.info`` with the transaction it was made in, so a session that outlives its
    transaction never answers from an earlier one's accounts.
    """
    transaction = session.get_transaction()
    held = session.info.get(name)
    if held is None or held[0] is not transaction:
        held = session.info[name] = (transaction, {})
    return held[1]


def _remembered(session: Session, name: str, key: Any, read: Callable[[Session, list[Any]], dict[Any, Any]]) -> Any:
    """``key``'s entry of the transaction's ``name`` memo, read alone (``read(session, [key])``) if nobody primed it."""
    known = _memo(session, name)
    if key not in known:
        known.update(read(session, [key]))
    return known[key]


def prime(session: Session, events: Iterable[Event]) -> None:
    """Read the grid workers and area subscribers of a fan-out batch's events, one query each.

    Why: asked event by event they were two round trips a step, most of what a step cost in a
    burst of reports (issue 22). An audience asked about an event nobody primed reads it itself.
    """
    events = list(events)
    grids = sorted({event["grid_code"] for event in events if event.get("grid_code")})
    if grids:
        _memo(session, "grid_workers").update(_grid_workers_of(session, grids))
    if events:
        _memo(session, "subscribers").update(subscribers_of(session, [event["id"] for event in events]))


def reporter(session: Session, event: Event) -> list[Recipient]:
    """The signed-in citizens who reported the event or a report merged into it.

    Anonymous and hotline reporters have no account: they follow by token or through Open311.
    """
    names = merged_reporters(session, event["id"])
    if event.get("reporter_username"):
        names.append(event["reporter_username"])
    return _followers(session, names)


def subscribers(session: Session, event: Event) -> list[Recipient]:
    """Whoever subscribed to an area holding the event and to its category (FixMyStreet-style)."""
    return _followers(session, _remembered(session, "subscribers", event["id"], subscribers_of))


def _followers(session: Session, names: list[str]) -> list[Recipient]:
    if not names:
        return []
    people = _people(session, "u.username = ANY(:names)", {"names": names})
    return [Recipient(p.user_id, p.username, p.phone, follower=True) for p in people]


def supervisors(session: Session, event: Event) -> list[Recipient]:
    """Every active supervisor (督办 is city-wide)."""
    return _people(session, "u.role = 'supervisor'", {})


AUDIENCES: dict[str, Audience] = {
    "handler": handler,
    "department": department,
    "grid_workers": grid_workers,
    "unit_dispatchers": unit_dispatchers,
    "reporter": reporter,
    "subscribers": subscribers,
    "supervisors": supervisors,
}


def recipients(session: Session, event: Event, audiences: Iterable[str], *, actor: str) -> list[Recipient]:
    """Everyone in any of ``audiences``, once each, in a stable order; not whoever took the step.

    Someone in a staff audience and a public one (a dispatcher who subscribed to an area) is told as staff.
    """
    people: dict[int, Recipient] = {}
    for name in audiences:
        for person in AUDIENCES[name](session, event):
            known = people.get(person.user_id)
            if person.username != actor and (known is None or (known.follower and not person.follower)):
                people[person.user_id] = person
    return sorted(people.values(), key=lambda p: p.user_id)
