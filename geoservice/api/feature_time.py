"""The ``datetime`` parameter of OGC API - Features: an instant, a date, or an interval of them.

A date (``2026-11-30``) is that whole day as the city counts it, in the city's time zone (the city
pack's ``timezone``, Asia/Shanghai by default): a duty officer asking for the 30th means the 30th
on the wall clock of the command centre, not a UTC day that starts at 08:00. An interval
``start/end`` may mix dates and instants; a date as its end includes that whole day. ``..`` or
nothing stands for an open end. Instants need a zone (RFC 3339), as the standard requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from geoservice.api.problems import ProblemError
from layers.dataset import dataset_setting

CITY_ZONE = "Asia/Shanghai"  # a city pack's default time zone
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class TimeWindow:
    """Times from ``start`` (inclusive) to ``end``, which is inclusive for an instant, exclusive after a date."""

    start: datetime | None
    end: datetime | None
    end_inclusive: bool = True


def city_zone(session: Session) -> ZoneInfo:
    """The time zone the loaded city counts its days in (its pack's ``timezone``)."""
    try:
        return ZoneInfo(dataset_setting(session, "city_timezone") or CITY_ZONE)
    except (ZoneInfoNotFoundError, ValueError):  # the pack check refuses unknown zones; kept safe all the same
        return ZoneInfo(CITY_ZONE)


def time_window(value: str, zone: ZoneInfo) -> TimeWindow:
    """The window a ``datetime`` value stands for; a 400 problem when it is not one."""
    parts = value.split("/")
    if len(parts) > 2:
        raise ProblemError(400, "Invalid datetime", "datetime is an instant, a date or start/end (.. for an open end)")
    if len(parts) == 1:
        if parts[0] in ("", ".."):
            raise ProblemError(400, "Invalid datetime", "datetime needs at least one time")
        if DATE.fullmatch(parts[0]):
            return TimeWindow(_day(parts[0], zone), _day(parts[0], zone, following=True), end_inclusive=False)
        moment = _moment(parts[0])
        return TimeWindow(moment, moment)
    first, last = (None if p in ("", "..") else p for p in parts)
    start = None if first is None else _day(first, zone) if DATE.fullmatch(first) else _moment(first)
    end, inclusive = None, True
    if last is not None and DATE.fullmatch(last):
        end, inclusive = _day(last, zone, following=True), False
    elif last is not None:
        end = _moment(last)
    if start is not None and end is not None and (start > end or (start == end and not inclusive)):
        raise ProblemError(400, "Invalid datetime", "the interval's start is after its end")
    return TimeWindow(start, end, inclusive)


def _day(value: str, zone: ZoneInfo, *, following: bool = False) -> datetime:
    """Midnight starting the day ``value`` (or, ``following``, the day after it) in ``zone``, in UTC."""
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise ProblemError(400, "Invalid datetime", f"{value!r} is not a date (YYYY-MM-DD)") from exc
    try:
        return datetime.combine(day + timedelta(days=int(following)), time(0), zone).astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ProblemError(400, "Invalid datetime", f"{value!r} is outside the range of times kept") from exc


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ProblemError(400, "Invalid datetime", f"{value!r} is not an RFC 3339 time or a date") from exc
    if moment.tzinfo is None:
        raise ProblemError(400, "Invalid datetime", f"{value!r} needs a zone, e.g. 2026-11-01T00:00:00Z")
    try:
        return moment.astimezone(UTC)  # PostgreSQL refuses offsets beyond ±15:59 that Python accepts
    except (OverflowError, ValueError) as exc:
        raise ProblemError(400, "Invalid datetime", f"{value!r} is outside the range of times kept") from exc
