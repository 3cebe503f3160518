"""What an import file of each layer must hold (the design's "Import files" contract).

One layer per file. Required properties must be present and non-empty; other properties are kept
(in the row's ``properties``). Polygon layers accept Polygon and MultiPolygon and store MultiPolygon.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerContract:
    """The rules one layer's file must follow."""

    name: str
    geometry_types: frozenset[str]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    versioned: bool = False
    unique_code: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


POLYGONAL = frozenset({"Polygon", "MultiPolygon"})
REGION_LEVELS = ("city", "town", "community")
RISK_LEVELS = ("low", "medium", "high")

CONTRACTS: dict[str, LayerContract] = {
    c.name: c
    for c in (
        LayerContract("regions", POLYGONAL, ("code", "name", "level"), ("parent_code",), versioned=True),
        LayerContract(
            "grids", POLYGONAL, ("code", "name", "community_code"), ("workers", "officer"), versioned=True
        ),
        LayerContract("posts", frozenset({"Point"}), ("code", "name", "level")),
        LayerContract("station_areas", POLYGONAL, ("code",)),
        LayerContract(
            "places",
            frozenset({"Point"}) | POLYGONAL,
            ("code", "name", "type"),
            ("owner", "phone", "risk_level", "inspection_cycle_days"),
        ),
        LayerContract(
            "events",
            frozenset({"Point"}),
            ("category", "occurred_at"),
            ("id", "description", "status", "priority", "source"),
            unique_code=False,
        ),
    )
}


def contract(layer: str) -> LayerContract:
    """The contract of ``layer``; a ValueError names the layers that exist."""
    try:
        return CONTRACTS[layer]
    except KeyError:
        raise ValueError(f"unknown layer {layer!r}; layers are: {', '.join(CONTRACTS)}") from None
