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

from geoservice.coverage.report import CoverageReport, LevelFigures, UnitFigures
from geoservice.coverage.service import Suggestion, coverage_report, suggest_sites

__all__ = ["CoverageReport", "LevelFigures", "Suggestion", "UnitFigures", "coverage_report", "suggest_sites"]
