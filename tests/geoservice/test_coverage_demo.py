"""Coverage on the full demo city: two independent computations agree, the CLI writes a report that
renders in headless Chromium, and five suggested central rooms deliver what they promise.

The session's demo database is only read: anything written here happens in a transaction that is
rolled back.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from geoservice.cli.coverage import coverage_app
from geoservice.coverage.crosscheck import FIELDS, postgis_figures
from geoservice.coverage.service import coverage_report, suggest_sites
from geoservice.settings import RoutingSettings

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)  # the demo's year of events ends here
RINGS = RoutingSettings().rings_m
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture
def session(demo_db: Engine) -> Iterator[Session]:
    """A session on the demo city whose work is always rolled back."""
    with Session(demo_db) as session:
        session.begin()
        yield session
        session.rollback()


def city_code(session: Session) -> str:
    return session.execute(text("SELECT code FROM regions WHERE level = 'city'")).scalar_one()


def agree(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-3 * max(abs(a), abs(b)) + 1e-9


@pytest.mark.parametrize("depth", ["city", "community"])
def test_python_and_postgis_agree_within_a_tenth_of_a_percent(session: Session, depth: str):
    code = city_code(session) if depth == "city" else session.execute(
        text("SELECT code FROM regions WHERE level = 'community' ORDER BY code LIMIT 1 OFFSET 40")
    ).scalar_one()  # fmt: skip
    report = coverage_report(session, code, as_of=AS_OF, radii_m=RINGS)
    other = postgis_figures(session, code, AS_OF, RINGS)
    assert len(other) == 3 * (1 + len(report.children)) and report.children
    worse = [
        (unit.code, level, field, getattr(f, field), other[(unit.code, level)][field])
        for unit in [report.region, *report.children]
        for level, f in unit.levels.items()
        for field in FIELDS
        if not agree(getattr(f, field), other[(unit.code, level)][field])
    ]
    assert worse == []


def test_towns_add_up_to_the_city(session: Session):
    report = coverage_report(session, city_code(session), as_of=AS_OF, radii_m=RINGS)
    assert len(report.children) == 14 and report.population_loaded
    for level, f in report.region.levels.items():
        towns = [t.levels[level] for t in report.children]
        assert sum(t.population for t in towns) == f.population == pytest.approx(1_246_788, rel=0.01)
        assert sum(t.population_covered for t in towns) == f.population_covered
        assert sum(t.events for t in towns) == f.events and sum(t.places for t in towns) == f.places
        assert sum(t.area_km2 for t in towns) == pytest.approx(f.area_km2, rel=1e-9)
        assert sum(t.covered_km2 for t in towns) == pytest.approx(f.covered_km2, rel=1e-6)
    central = report.region.levels["central_room"]
    assert 0.05 < central.area_share < central.population_share < 0.9  # central rooms stand where people live


def test_five_suggested_central_rooms_add_what_they_claim(session: Session):
    suggestion = suggest_sites(session, None, "central_room", 5, as_of=AS_OF, radii_m=RINGS)
    assert len(suggestion.sites) == 5 and suggestion.run.status == "Optimal"
    assert suggestion.gain > 0 and suggestion.run.objective == pytest.approx(suggestion.gain)
    before = coverage_report(session, None, levels=["central_room"], as_of=AS_OF, radii_m=RINGS)
    assert before.region.levels["central_room"].population_covered == suggestion.covered_before
    for n, site in enumerate(suggestion.sites, 1):
        session.execute(
            text(
                "INSERT INTO police_posts (code, name, level, geom) "
                "VALUES (:code, :name, 'central_room', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
            ),
            {"code": f"CRNEW{n}", "name": f"新中心警务室{n}", "lon": site.lon, "lat": site.lat},
        )
    after = coverage_report(session, None, levels=["central_room"], as_of=AS_OF, radii_m=RINGS)
    gained = after.region.levels["central_room"].population_covered - suggestion.covered_before
    assert gained == pytest.approx(suggestion.gain, abs=0.5)


def test_cli_report_writes_every_file_and_renders_in_chromium(
    demo_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, artifacts: Path
):
    monkeypatch.setenv("GEOSERVICE_DATABASE_URL", demo_url)
    result = CliRunner().invoke(coverage_app, ["report", "--out", str(tmp_path), "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    code = "320682000000"
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(
        f"coverage-{code}{suffix}" for suffix in (".html", ".geojson", ".csv", "-places.csv", ".json")
    )
    page = tmp_path / f"coverage-{code}.html"
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1100, "height": 1500})
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto(page.as_uri())
        maps, charts = tab.locator("svg.map"), tab.locator("svg.chart")
        assert maps.count() == 3 and charts.count() == 3
        for k in range(3):
            box = maps.nth(k).bounding_box()
            assert box["width"] > 500 and box["height"] > 300
            assert maps.nth(k).locator("path").count() > 14 and charts.nth(k).locator("rect").count() >= 2 * 14
        assert "如皋市" in tab.locator("h1").inner_text()
        # The Folium map: Leaflet ran (inlined, nothing fetched), drew the gaps and offers every layer.
        leaflet = tab.frame_locator("iframe.interactive-map")
        leaflet.locator(".leaflet-overlay-pane path").first.wait_for()
        assert leaflet.locator(".leaflet-overlay-pane path").count() > 14
        labels = leaflet.locator(".leaflet-control-layers-overlays label").all_inner_texts()
        assert sum("Gaps" in label for label in labels) == 3 and sum("Posts" in label for label in labels) == 3
        tab.screenshot(path=str(artifacts / "coverage-report.png"))
        tab.locator("#central_room").screenshot(path=str(artifacts / "coverage-report-central-room.png"))
        pdf = tab.pdf(format="A4", print_background=True)
        browser.close()
    assert requests == [page.as_uri()]  # nothing fetched beyond the page itself
    pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
    assert pages >= 5  # summary, one page or more per level, notes
    (artifacts / "coverage-report.pdf").write_bytes(pdf)


def test_cli_unknown_region_writes_nothing(demo_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("GEOSERVICE_DATABASE_URL", demo_url)
    result = CliRunner().invoke(coverage_app, ["report", "--out", str(tmp_path / "out"), "--region", "320682999999"])
    assert result.exit_code == 1 and "no region or grid has code '320682999999'" in result.output
    assert not (tmp_path / "out").exists()
