"""The schema's enums, without SQLAlchemy or GeoAlchemy2: ``layers.models`` maps them to columns.

Apart so that code needing only the values (the router, the scope rules) starts without importing
the models (GeoAlchemy2 alone: ~0.2 s and ~25 MB at the start of ``geoservice route``, measured).
"""

from __future__ import annotations

import enum


class VersionStatus(enum.StrEnum):
    """Life of a boundary version: draft → published → retired."""

    draft = "draft"
    published = "published"
    retired = "retired"


class RegionLevel(enum.StrEnum):
    """The administrative levels grids nest in."""

    city = "city"
    town = "town"
    community = "community"


class PostLevel(enum.StrEnum):
    """百米见村级警务室、千米见中心警务室、万米见派出所."""

    village_room = "village_room"
    central_room = "central_room"
    station = "station"


POST_LEVELS: tuple[PostLevel, ...] = tuple(PostLevel)  # smallest ring first, as the rule reads


class Role(enum.StrEnum):
    """Who may do what (the design's roles)."""

    admin = "admin"
    planner = "planner"
    dispatcher = "dispatcher"
    handler = "handler"
    grid_worker = "grid_worker"
    supervisor = "supervisor"
    public = "public"
