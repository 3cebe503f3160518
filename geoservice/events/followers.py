"""Who follows an event: the notifications tell them its progress (``notifications.recipients``).

Two kinds of people: the signed-in reporters of the reports merged into it (their report now
follows this master), and the signed-in users whose subscribed area contains the event's point and
whose categories name its category or its class (no categories: everything in the area). Only
enabled accounts are listed: the anonymous follow with their token, Open311 reports carry the
client's name, not a person's, and neither can be told by name.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

MERGED_REPORTERS = """
    SELECT d.reporter_username AS username FROM events d JOIN users u ON u.username = d.reporter_username
     WHERE d.merged_into = :id AND NOT u.disabled
"""
SUBSCRIBERS = """
    SELECT s.username, e.id AS event_id FROM events e
      JOIN categories c ON c.code = e.category_code
      JOIN subscriptions s ON ST_Intersects(s.geom, e.geom)
      JOIN users u ON u.username = s.username
     WHERE e.id = ANY(:ids) AND NOT u.disabled
       AND (s.categories = '{}' OR e.category_code = ANY(s.categories) OR c.parent_code = ANY(s.categories))
"""


def merged_reporters(session: Session, event_id: int) -> list[str]:
    """Usernames of the signed-in reporters whose reports were merged into ``event_id``."""
    return list(session.execute(text(f"{MERGED_REPORTERS} ORDER BY username"), {"id": event_id}).scalars())


def subscribers_of(session: Session, event_ids: list[int]) -> dict[int, list[str]]:
    """Each event's usernames whose area subscription covers its point and names its category (or none)."""
    found: dict[int, list[str]] = {event_id: [] for event_id in event_ids}
    for username, event_id in session.execute(text(f"{SUBSCRIBERS} ORDER BY username"), {"ids": event_ids}):
        found[event_id].append(username)
    return found


def followers(session: Session, event_id: int) -> list[str]:
    """Both kinds (sorted, each once); empty for an unknown event."""
    query = f"{MERGED_REPORTERS} UNION SELECT username FROM ({SUBSCRIBERS}) s ORDER BY username"
    return list(session.execute(text(query), {"id": event_id, "ids": [event_id]}).scalars())
