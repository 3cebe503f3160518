"""Who follows an event: for the notifications to tell at a merge (and at every later step).

Two kinds of people: the signed-in reporters of the reports merged into it (their report now
follows this master), and the signed-in users whose subscribed area contains the event's point and
whose categories name its category or its class (no categories: everything in the area). Only
enabled accounts are listed: the anonymous follow with their token, Open311 reports carry the
client's name, not a person's, and neither can be told by name.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

FOLLOWERS = text(
    """
    SELECT d.reporter_username AS username FROM events d JOIN users u ON u.username = d.reporter_username
     WHERE d.merged_into = :id AND NOT u.disabled
    UNION
    SELECT s.username FROM events e
      JOIN categories c ON c.code = e.category_code
      JOIN subscriptions s ON ST_Intersects(s.geom, e.geom)
      JOIN users u ON u.username = s.username
     WHERE e.id = :id AND NOT u.disabled
       AND (s.categories = '{}' OR e.category_code = ANY(s.categories) OR c.parent_code = ANY(s.categories))
    ORDER BY username
    """
)


def followers(session: Session, event_id: int) -> list[str]:
    """Usernames following event ``event_id`` (sorted, each once); empty for an unknown event."""
    return list(session.execute(FOLLOWERS, {"id": event_id}).scalars())
