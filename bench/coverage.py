"""The coverage suite: the full coverage-gap report of the demo city, against the same figures in PostGIS.

* **report**: ``geoservice.coverage`` end to end for the whole city (the city and its 14 towns, all
  three post levels): read the layers, build the rings, compute every figure, render HTML, GeoJSON
  and CSV. Target (from the issue): under 10 s on this machine. Timed cold (empty ring cache) and warm.
* **peer**: the same figures (area and covered area, people, key places, events, inside and outside
  each rule, per unit and level) the way a PostGIS user would get them: the layers transformed into
  temporary tables with GIST indexes, ``ST_Buffer`` + ``ST_Union`` + ``ST_Intersection``,
  ``ST_DWithin`` (``geoservice.coverage.crosscheck``). The ratio is peer time over report time
  (figures only, no rendering): machine-independent, both measured in the same run.
* **agreement** (a correctness check, not a speed target): every figure of the two within 0.1 %.
* **siting**: where 5 new central rooms would reach the most people (spopt MCLP, CBC): runtime, the
  solver's status, and the people reached before and after.

``python -m bench.coverage`` runs it alone (building the demo city in the bench cluster first);
``run`` has the signature of a suite in ``bench/__main__.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from sqlalchemy.orm import Session

from bench.cities import City, bench_cluster, build_cities
from bench.report import Table, print_table, verdict
from geoservice.coverage.crosscheck import FIELDS, postgis_figures
from geoservice.coverage.html import render_html
from geoservice.coverage.output import places_csv, report_csv, report_geojson, report_json
from geoservice.coverage.report import CoverageReport
from geoservice.coverage.rings import RINGS
from geoservice.coverage.service import coverage_report, suggest_sites
from geoservice.infra.database import make_engine
from geoservice.settings import RoutingSettings

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)  # the demo city's year of events ends here
REPORT_TARGET_S = 10.0
AGREEMENT = 1e-3
REPEATS = 3
SITES = 5


def run(cities: list[City], args: argparse.Namespace | None, console: Console) -> tuple[list[Table], bool]:
    """Benchmark the demo city (other cities have no population, places or events to report on)."""
    demo = next((c for c in cities if c.key == "demo"), None)
    if demo is None:
        console.log("coverage: no demo city in this run, skipped")
        return [], True
    engine = make_engine(demo.url)
    radii = RoutingSettings().rings_m
    try:
        with Session(engine) as session:
            console.log("coverage: full report of the demo city (cold, then warm)")
            RINGS.clear()
            cold_s, (report, rendered) = _timed(lambda: _full_report(session, radii))
            warm = [_timed(lambda: _full_report(session, radii))[0] for _ in range(REPEATS)]
            figures = [
                _timed(lambda: coverage_report(session, None, as_of=AS_OF, radii_m=radii))[0] for _ in range(REPEATS)
            ]
            console.log("coverage: the same figures in PostGIS")
            peer = []
            for _ in range(2):
                seconds, other = _timed(lambda: postgis_figures(session, report.region.code, AS_OF, radii))
                peer.append(seconds)
                session.rollback()
            worst = _worst_difference(report, other)
            console.log(f"coverage: siting {SITES} central rooms (spopt MCLP)")
            siting_s, suggestion = _timed(
                lambda: suggest_sites(session, None, "central_room", SITES, as_of=AS_OF, radii_m=radii)
            )
            session.rollback()
    finally:
        engine.dispose()
    warm_s, figures_s, peer_s = statistics.median(warm), statistics.median(figures), min(peer)
    table = Table(f"coverage report — {demo.title}")
    bench = f"report: city + {len(report.children)} towns × 3 levels"
    table.add(bench, "geoservice, cold: load + rings + figures + HTML/GeoJSON/CSV", f"{cold_s:.2f} s", "",
              f"< {REPORT_TARGET_S:g} s", verdict(cold_s < REPORT_TARGET_S))  # fmt: skip
    table.add(bench, "geoservice, warm (ring cache hit)", f"{warm_s:.2f} s", "", f"< {REPORT_TARGET_S:g} s",
              verdict(warm_s < REPORT_TARGET_S))  # fmt: skip
    table.add(bench, "geoservice figures only (load + compute)", f"{figures_s:.2f} s", f"{peer_s / figures_s:.1f}×")
    table.add(bench, "PostGIS SQL: temp tables + GIST, ST_Buffer/ST_Union/ST_DWithin", f"{peer_s:.2f} s", "1.0×")
    table.add("agreement", "largest relative difference, every figure", f"{worst:.5%}", "", f"≤ {AGREEMENT:.1%}",
              verdict(worst <= AGREEMENT))  # fmt: skip
    run_ = suggestion.run
    table.add(f"siting: {SITES} new central rooms", f"spopt MCLP, PuLP CBC ({run_.status}, {run_.solution})",
              f"{siting_s:.2f} s", "", "< 60 s", verdict(siting_s < 60))  # fmt: skip
    table.notes += [
        f"Report sizes: HTML {rendered['html'] / 1e6:.2f} MB, GeoJSON {rendered['geojson'] / 1e6:.2f} MB, "
        f"CSV {rendered['csv'] / 1e3:.1f} kB. Warm and figures-only are medians of {REPEATS}; PostGIS the best of 2.",
        "Ratio: PostGIS time over geoservice time for the same figures (higher is better for geoservice).",
        f"Siting: people within 1 km of a central room {suggestion.covered_before:,.0f} → "
        f"{suggestion.covered_after:,.0f} of {suggestion.total:,.0f} (+{suggestion.gain:,.0f}); MCLP model "
        f"{len(suggestion.problem.covers):,} demand classes × {len(suggestion.problem.candidates)} candidates "
        f"(of {suggestion.problem.considered:,}), solver {run_.runtime_s:.2f} s of {siting_s:.2f} s.",
    ]
    return [table], worst <= AGREEMENT


def _full_report(session: Session, radii: dict[str, float]) -> tuple[CoverageReport, dict[str, int]]:
    report = coverage_report(session, None, as_of=AS_OF, radii_m=radii)
    rendered = {
        "html": len(render_html(report)),
        "geojson": len(json.dumps(report_geojson(report))),
        "csv": len(report_csv(report)) + len(places_csv(report)),
        "json": len(json.dumps(report_json(report))),
    }
    return report, rendered


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _worst_difference(report: CoverageReport, other: dict[tuple[str, str], dict[str, float]]) -> float:
    worst = 0.0
    for unit in [report.region, *report.children]:
        for level, figures in unit.levels.items():
            for field in FIELDS:
                a, b = getattr(figures, field), other[(unit.code, level)][field]
                if a is None or b is None:
                    worst = worst if a is b else float("inf")
                elif a != b:
                    worst = max(worst, abs(a - b) / max(abs(a), abs(b)))
    return worst


def main(argv: list[str] | None = None) -> int:
    """Build the demo city in the bench cluster, run the suite, print its table."""
    argparse.ArgumentParser(prog="python -m bench.coverage", description=__doc__.splitlines()[0]).parse_args(argv)
    console = Console(width=max(Console().width, 160))
    cluster = bench_cluster()
    was_running = cluster.status().running
    try:
        cluster.up("bench")
        cities = build_cities(cluster, ("demo",), step=console.log)
        tables, correct = run(cities, None, console)
    finally:
        if not was_running:
            cluster.down()
    for table in tables:
        print_table(console, table)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
