"""Reading events: one by id, queues and search, always inside the caller's scope.

Scope (the design's "who may do what"): dispatchers and grid workers see their region subtree,
handlers their department, the public their own reports, supervisors and admins everything. A
single read outside the scope answers "not found", never "forbidden", so existence does not leak.
Reporter name, phone and username are masked for everyone but those who act on the report.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import Scope, owner_sql, region_prefix, scope_parts, scope_sql
from geoservice.auth.users import Principal
from geoservice.errors import InvalidInput
from geoservice.events.deadlines import CLOCKED_STATUSES, is_overdue, running_clock, warning_colour, warning_sql
from geoservice.events.text_pairs import has_case, pairs_to_ask
from geoservice.events.workflow import actions_for
from geoservice.settings import EventSettings
from layers.models import Role

COLUMNS = """
    e.id, e.status, e.category_code, e.description, e.source, e.priority, e.escalation_level,
    ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, e.occurred_at, e.reported_at, e.updated_at,
    e.grid_code, e.community_code, e.town_code, e.station_code, e.department_code, e.rule_id, e.route_reason,
    e.boundary_version_id, e.row_version, e.handler_username, e.reporter_username, e.client_id,
    e.reporter_name, e.reporter_phone, e.photos, e.accept_due_at, e.handle_due_at, e.accepted_at,
    e.dispatched_at, e.handling_at, e.handled_at, e.verified_at, e.archived_at, e.evaluated_at,
    e.reopen_count, e.escalation_count, e.satisfaction, e.evaluation_comment, e.properties,
    e.owner_kind, e.owner_code,
    coalesce((SELECT c.small_matter FROM categories c WHERE c.code = e.category_code), false) AS small_matter,
    e.merged_into, e.merged_at
"""
# Supervision (督办): the reply deadline of the order awaiting a reply, if any (``events.supervision``).
SUPERVISION = (
    "(SELECT min(so.reply_due_at) FROM supervision_orders so "
    "WHERE so.event_id = e.id AND so.replied_at IS NULL) AS supervision_due_at"
)
# Whether an event's clock runs, written as migration 0020's index ``ix_events_running_reported`` is.
RUNNING = f"(e.status IN {CLOCKED_STATUSES!r})"
SORTS = {"reported_at", "occurred_at", "updated_at", "id"}
MAX_LIMIT = 500
MAX_TEXT_QUERY = 200


def fetch_event(session: Session, event_id: int, scope: Scope | None = None) -> dict | None:
    """The event as a dict, or None when it does not exist or is outside ``scope`` (None: no limit)."""
    where, params = scope_sql(scope or Scope(everything=True))
    row = session.execute(
        text(f"SELECT {COLUMNS}, {SUPERVISION} FROM events e WHERE e.id = :id AND {where}"),
        {"id": event_id, **params},
    ).first()
    return None if row is None else dict(row._mapping)


def event_log(session: Session, event_id: int) -> list[dict[str, Any]]:
    """Every transition of an event, oldest first."""
    rows = session.execute(
        text(
            "SELECT id, at, actor, role, action, from_status, to_status, note, details "
            "FROM event_log WHERE event_id = :id ORDER BY id"
        ),
        {"id": event_id},
    )
    return [dict(r._mapping) for r in rows]


@dataclass(frozen=True)
class EventFilters:
    """What a queue or a search asks for; every member optional."""

    status: tuple[str, ...] = ()
    warning: tuple[str, ...] = ()
    category: str | None = None
    department: str | None = None
    region: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    reported_from: datetime | None = None
    reported_to: datetime | None = None
    text: str | None = None
    escalation_level: str | None = None
    owner_kind: str | None = None
    owner_code: str | None = None
    owner_of: Principal | None = None  # ``owner=mine``: the events this caller acts for now


@dataclass(frozen=True)
class Page:
    """One page of events and the cursor of the next (None on the last page)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def list_events(
    session: Session,
    scope: Scope,
    filters: EventFilters,
    *,
    now: datetime,
    settings: EventSettings,
    sort: str = "-reported_at",
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """A page of events in scope matching ``filters``, ordered by ``sort`` (then id), keyset-paginated."""
    column, descending = _parse_sort(sort)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be within 1..{MAX_LIMIT}", title="Invalid request")
    parts, params = scope_parts(scope)
    family = category_family(session, filters.category) if filters.category else None
    through_place = _small_subtree(scope, filters)
    # Inside a community a word without cased letters is checked by LIKE alone (``filter_clauses``).
    pairs = pairs_to_ask(session, filters.text) if filters.text and not through_place else None
    clauses, filter_params = filter_clauses(
        filters, settings, category_codes=family, through_place=through_place, text_pairs=pairs
    )
    params.update(filter_params)
    params["now"] = now
    if cursor is not None:
        after_value, after_id = _read_cursor(cursor, sort)
        op = "<" if descending else ">"
        clauses.append(f"(e.{column}, e.id) {op} (CAST(:after_value AS {_sql_type(column)}), :after_id)")
        params.update(after_value=after_value, after_id=after_id)
    direction = "DESC" if descending else "ASC"
    ordered = f"e.{column}"
    if through_place or _words_of_a_department(scope, filters):
        # A community or a grid holds a few thousand events at most: read them through the place
        # index and sort them. Ordered by the bare column, the planner walks the whole time index
        # backwards hoping to meet 50 of them early (a grid worker's queue: 0.2 s at a million).
        # So for a department's words: the planner cannot know that police reports never say 垃圾,
        # and a walk for them read all million events (4 s); read through the indexes of the pairs
        # and of the department they cost 20-30 ms, and 0.3-0.45 s for a word in nearly all of them.
        ordered = f"({ordered} + interval '0 s')" if column != "id" else f"({ordered} + 0)"
    # The page's ids first, then its rows: a sort then carries two narrow columns, not 47 wide ones,
    # and the supervision and category lookups run for the page's rows only, not for every candidate
    # (a grid worker's queue sorts its community's 5,600 events: 19.8 ms of execution as one select).
    selects = [
        f"SELECT e.id, e.{column} AS sort_key FROM events e WHERE {' AND '.join([part, *clauses])} "
        f"ORDER BY {ordered} {direction}, e.id {direction} LIMIT :limit"
        for part in parts
    ]
    if len(selects) > 1:
        # Each part of the scope has its own first rows, read as the planner best reads that part (a
        # handler's filter on a category the department never handles: 3.1 s as one OR, ms as two).
        union = " UNION ALL ".join(f"({select})" for select in selects)
        selects = [f"SELECT * FROM ({union}) ids ORDER BY ids.sort_key {direction}, ids.id {direction} LIMIT :limit"]
    page = (
        f"SELECT {COLUMNS}, {SUPERVISION} FROM ({selects[0]}) page JOIN events e ON e.id = page.id "
        f"ORDER BY page.sort_key {direction}, page.id {direction}"
    )
    result = session.execute(text(page), {**params, "limit": limit + 1})
    keys = list(result.keys())
    rows = result.all()
    # zip, not ``dict(row._mapping)``: 0.16 against 0.54 ms for a page of 50 (47 columns, measured).
    items = [dict(zip(keys, r, strict=True)) for r in rows[:limit]]
    next_cursor = _make_cursor(items[-1], column, sort) if len(rows) > limit else None
    return Page(items, next_cursor)


def event_view(event: dict[str, Any], principal: Principal, now: datetime, settings: EventSettings) -> dict[str, Any]:
    """What a caller sees of an event: warning and overdue computed now, reporter masked unless theirs to see."""
    clock = running_clock(event)
    view = {k: v for k, v in event.items() if k != "properties"}
    view["properties"] = {k: v for k, v in (event.get("properties") or {}).items() if k != "request_sha256"}
    view["warning"] = warning_colour(clock, now, settings)
    view["overdue"] = is_overdue(clock, now)
    view["due_at"] = clock.due_at if clock else None
    view["allowed_actions"] = actions_for(
        event["status"], principal.role, bool(event.get("small_matter")), event.get("escalation_level")
    )
    if principal.role == Role.handler and principal.department_code != event.get("department_code"):
        view["allowed_actions"] = []  # a co-department works on its task (events.cotasks), not the event
    view["supervision_due_at"] = event.get("supervision_due_at")
    view["supervised"] = view["supervision_due_at"] is not None
    if not sees_reporter(principal, event):  # the account name identifies as well as the name does
        view["reporter_name"] = mask_name(event.get("reporter_name"))
        view["reporter_phone"] = mask_phone(event.get("reporter_phone"))
        view["reporter_username"] = mask_name(event.get("reporter_username"))
    return view


def sees_reporter(principal: Principal, event: dict[str, Any]) -> bool:
    """Those who act on a report (its dispatchers, its department's handlers), supervisors, admins, the reporter."""
    if principal.role in (Role.admin, Role.supervisor, Role.dispatcher):
        return True  # a dispatcher reaching this event has it in scope
    if principal.role == Role.handler:
        return principal.department_code == event.get("department_code")
    return not principal.anonymous and principal.username == event.get("reporter_username")


def mask_name(name: str | None) -> str | None:
    """张三 → 张*, 欧阳娜娜 → 欧***: the family name stays, enough to greet, not to identify."""
    return None if not name else name[0] + "*" * (len(name) - 1)


def mask_phone(phone: str | None) -> str | None:
    """13812345678 → 138****5678, as Chinese services print them."""
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "*" * len(digits)


def filter_clauses(
    filters: EventFilters,
    settings: EventSettings,
    category_codes: Sequence[str] | None = None,
    *,
    through_place: bool = False,
    text_pairs: Sequence[str] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """WHERE clauses over ``events e`` (and their parameters) for the filters: the one place they are written.

    Event lists, event tiles and the map's heat layer all filter through it. ``category_codes``: the
    category filter's family as read by ``category_family``, written as a list the planner's
    statistics on (category, department) pairs can use; without it, the family is a prefix match.
    ``through_place``: the events are read through the place index (a community or a grid, a few
    thousand at most), so the category and the status are written where their indexes cannot serve
    them: the planner would otherwise AND the place's bitmap with a category class's 340,000 entries
    (32 ms of a grid worker's 36, measured at a million events), or read every running event's page
    for a status, to save filtering 5,600 rows (about 1 ms).
    So are words without cased letters, which ``LIKE`` checks in about 2.5 ms over those 5,600
    descriptions, where ANDing a common word's pairs (520,000 entries) cost 40 ms; words with
    cased letters keep their index (``ILIKE`` over the 5,600 costs 7-13 ms). ``text_pairs``: which of
    the words' character pairs to ask the index for (``events.text_pairs``); without it, all of them.
    """
    clauses: list[str] = []
    params: dict[str, Any] = {}
    status = "(e.status || '')" if through_place else "e.status"
    if len(filters.status) == 1:
        # An equality, not ``= ANY``: the index of (status, report time) then reads one status's
        # events newest first (the archived ones sit behind the newest 9,000 at a million events).
        clauses.append(f"{status} = :status")
        params["status"] = filters.status[0]
    elif filters.status:
        clauses.append(f"{status} = ANY(:statuses)")
        params["statuses"] = list(filters.status)
    if filters.warning:
        # ``coalesce`` (a colour is never null) hides the colour's share from the planner, which would
        # guess 0.5 % of the running events, sort them all and not walk the newest of them (migration
        # 0020): red was 17.6 ms of execution at a million events, 0.6 ms walked.
        clauses.append(f"coalesce({warning_sql(settings)} = ANY(:warnings), false)")
        params["warnings"] = list(filters.warning)
        if "none" not in filters.warning:
            # Implied by the colour (only a running clock has one), but an index can serve it: without
            # it a colour no event has read all million rows to say so (bench.big_events).
            # Written exactly as the index's expression, which reads the newest running events first.
            clauses.append(RUNNING)
    if filters.category and category_codes is not None:
        code = "(e.category_code || '')" if through_place else "e.category_code"
        clauses.append(f"{code} = ANY(:category_codes)")
        params["category_codes"] = list(category_codes)
    elif filters.category:
        clauses.append("(e.category_code = :category OR e.category_code LIKE :category_children)")
        params.update(category=filters.category, category_children=_like_escape(filters.category) + ".%")
    if filters.department:
        clauses.append("e.department_code = :department")
        params["department"] = filters.department
    if filters.region:
        prefix = region_prefix(filters.region)
        clauses.append("coalesce(e.grid_code, e.community_code, e.town_code, '') LIKE :region_prefix")
        params["region_prefix"] = prefix + "%"
    if filters.bbox:
        clauses.append("e.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
        params.update(dict(zip(("minx", "miny", "maxx", "maxy"), filters.bbox, strict=True)))
    if filters.reported_from:
        clauses.append("e.reported_at >= :reported_from")
        params["reported_from"] = filters.reported_from
    if filters.reported_to:
        clauses.append("e.reported_at < :reported_to")
        params["reported_to"] = filters.reported_to
    if filters.text:
        # The pairs below are implied by the ILIKE (every character pair of the words is one of the
        # description's, migration 0018) and their index serves them: two-character Chinese words too.
        # The planner would multiply the two conditions' shares as if independent and expect a common
        # word in a few hundred events, not 58,000 of a million; ``coalesce`` (never null here: a
        # null description is not a match either way) hides the ILIKE's share from the estimate, so
        # a county's first page of a common word walks the newest events (2-5 ms, not 25-30).
        # ILIKE folds the case of every character it compares; words without cased letters (Chinese,
        # digits) match exactly the same rows with LIKE, which compares bytes: 2.5 against 9.6 ms over
        # a community's 5,600 descriptions (measured at a million events).
        cased = has_case(filters.text)
        clauses.append(f"coalesce(e.description {'ILIKE' if cased else 'LIKE'} :text ESCAPE '\\', false)")
        params["text"] = "%" + _like_escape(filters.text) + "%"
        if len(filters.text) >= 2 and (cased or not through_place):
            if text_pairs:
                clauses.append("event_text_bigrams(e.description) @> CAST(:text_pairs AS text[])")
                params["text_pairs"] = list(text_pairs)
            else:
                clauses.append("event_text_bigrams(e.description) @> event_text_bigrams(:text_words)")
                params["text_words"] = filters.text
    if filters.escalation_level:
        clauses.append("e.escalation_level = :level")
        params["level"] = filters.escalation_level
    if filters.owner_kind:
        clauses.append("e.owner_kind = :owner_kind")
        params["owner_kind"] = filters.owner_kind
    if filters.owner_code:
        clauses.append("e.owner_code = :owner_code")
        params["owner_code"] = filters.owner_code
    if filters.owner_of is not None:
        mine, mine_params = owner_sql(filters.owner_of)
        clauses.append(mine)
        params.update(mine_params)
    return clauses, params


def category_family(session: Session, category: str) -> list[str]:
    """The category and every category under it: the codes an event filtered by ``category`` may have.

    Every event's category is one of the city's (a foreign key), so the list selects exactly the events
    that the prefix match ``category_code = c OR category_code LIKE 'c.%'`` selects.
    """
    return list(
        session.execute(
            text("SELECT code FROM categories WHERE code = :c OR code LIKE :children ORDER BY code"),
            {"c": category, "children": _like_escape(category) + ".%"},
        ).scalars()
    )


SMALL_SUBTREE_DIGITS = 12  # a community (12 digits) or a grid (15): the levels whose events fit in one sort


def _small_subtree(scope: Scope, filters: EventFilters) -> bool:
    """Whether the scope or the ``region`` filter narrows the events to one community or grid."""
    prefixes = [scope.region_prefix or "", region_prefix(filters.region) if filters.region else ""]
    return max(len(p) for p in prefixes) >= SMALL_SUBTREE_DIGITS


def _words_of_a_department(scope: Scope, filters: EventFilters) -> bool:
    """Whether a department's list searches for words the index of character pairs can find."""
    return scope.department_code is not None and filters.text is not None and len(filters.text) >= 2


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _parse_sort(sort: str) -> tuple[str, bool]:
    column = sort.lstrip("-")
    if column not in SORTS:
        raise InvalidInput(f"sort by one of {', '.join(sorted(SORTS))}, '-' first for descending", title="Invalid sort")
    return column, sort.startswith("-")


def _sql_type(column: str) -> str:
    return "bigint" if column == "id" else "timestamptz"


def _make_cursor(last: dict[str, Any], column: str, sort: str) -> str:
    value = last[column]
    payload = {"v": value.isoformat() if isinstance(value, datetime) else value, "id": last["id"], "s": sort}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _read_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    """The keyset position a cursor holds, checked as strictly as the query will use it.

    A cursor comes back from the client, so it is input: its id must be an integer PostgreSQL's
    bigint holds, and its value an integer (sort by id) or a zoned time — anything else (1e400, a
    word where a time goes) would otherwise fail inside the database as a 500.
    """
    forged = InvalidInput("the cursor is not one this service handed out", title="Invalid cursor")
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value, event_id, cursor_sort = payload["v"], payload["id"], payload["s"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise forged from exc
    if not _bigint(event_id):
        raise forged
    if cursor_sort != sort:
        raise InvalidInput(f"the cursor belongs to sort={cursor_sort}, not sort={sort}", title="Invalid cursor")
    column, _ = _parse_sort(sort)
    if column == "id" and not _bigint(value):
        raise forged
    if column != "id":
        try:
            moment = datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise forged from exc
        if moment.tzinfo is None:
            raise forged
    return value, event_id


def _bigint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
