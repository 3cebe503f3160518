"""Coverage of the police-post rings: gap reports per region, and where new posts would help most.

"百米见村级警务室、千米见中心警务室、万米见派出所" — every post covers a ring of its level's radius
(``RoutingSettings.ring_*_m``), measured in the city's metric CRS. One module per job:

* ``inputs``: the I/O edge — regions, posts, places, events and population read from PostGIS and
  projected once into metric coordinates;
* ``rings``: ring polygons and distance tests per level, cached by a fingerprint of the posts;
* ``report``: the figures per region and child region (pure);
* ``crosscheck``: the same figures computed independently in PostGIS (tests and the benchmark);
* ``siting``: spopt MCLP/LSCP on bounded, exactly aggregated demand (pure);
* ``service``: load + compute, as the API and the CLI call them;
* ``output`` and ``html``: JSON, GeoJSON, CSV and the printable HTML page.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geoservice.coverage.report import CoverageReport, LevelFigures, UnitFigures
    from geoservice.coverage.service import Suggestion, coverage_report, suggest_sites

# Re-exported on first use (PEP 562), not imported here: importing any module of the package runs this
# file, and every server worker imports ``coverage.inputs`` (the API's error table), which should not
# bring the service's geopandas, spopt and scipy along (~90 MB, measured) before anyone asks for coverage.
_EXPORTS = {"CoverageReport": "report", "LevelFigures": "report", "UnitFigures": "report",
            "Suggestion": "service", "coverage_report": "service", "suggest_sites": "service"}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["CoverageReport", "LevelFigures", "Suggestion", "UnitFigures", "coverage_report", "suggest_sites"]
