"""The demo city as loaded in PostGIS: a valid coverage, nested codes, routed events, idempotent load."""

import shapely
from sqlalchemy import Engine, text

from geoservice.city.demo import demo_loaded


def rows(engine: Engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(text(sql)).all()


def test_counts(demo_db: Engine):
    ((towns, communities, grids, posts, stations, places, types, events),) = rows(
        demo_db,
        "SELECT (SELECT count(*) FROM regions WHERE level = 'town'), (SELECT count(*) FROM regions WHERE level = 'community'),"
        " (SELECT count(*) FROM grids), (SELECT count(*) FROM police_posts),"
        " (SELECT count(*) FROM police_posts WHERE jurisdiction IS NOT NULL),"
        " (SELECT count(*) FROM key_places), (SELECT count(DISTINCT type) FROM key_places), (SELECT count(*) FROM events)",
    )
    assert towns == 14 and 250 <= communities <= 350 and 1_300 <= grids <= 1_700
    assert 350 <= posts <= 450 and stations >= 14
    assert 1_800 <= places <= 2_200 and types >= 6
    assert events == 50_000


def test_grids_are_a_valid_coverage_of_the_city(demo_db: Engine):
    grids = shapely.from_wkb([bytes(r[0]) for r in rows(demo_db, "SELECT ST_AsBinary(geom) FROM grids")])
    assert shapely.coverage_is_valid(grids)
    city = shapely.from_wkb(bytes(rows(demo_db, "SELECT ST_AsBinary(geom) FROM regions WHERE level = 'city'")[0][0]))
    union = shapely.coverage_union_all(grids)
    assert abs(union.area - city.area) / city.area < 1e-9
    assert shapely.symmetric_difference(union, city).area / city.area < 1e-9


def test_codes_nest(demo_db: Engine):
    orphans = rows(
        demo_db,
        "SELECT g.code FROM grids g LEFT JOIN regions c ON c.code = g.community_code AND c.level = 'community' "
        "WHERE c.code IS NULL OR left(g.code, 12) <> g.community_code "
        "UNION ALL SELECT c.code FROM regions c LEFT JOIN regions t ON t.code = c.parent_code "
        "WHERE c.level = 'community' AND (t.level IS DISTINCT FROM 'town' OR left(c.code, 9) <> left(t.code, 9)) "
        "UNION ALL SELECT t.code FROM regions t LEFT JOIN regions p ON p.code = t.parent_code "
        "WHERE t.level = 'town' AND p.level IS DISTINCT FROM 'city'",
    )
    assert orphans == []


def test_every_grid_lies_in_its_community(demo_db: Engine):
    outside = rows(
        demo_db,
        "SELECT g.code FROM grids g JOIN regions c ON c.code = g.community_code "
        "WHERE NOT ST_Covers(ST_Buffer(c.geom, 1e-9), g.geom)",
    )
    assert outside == []


def test_every_event_is_placed(demo_db: Engine):
    ((unplaced,),) = rows(
        demo_db,
        "SELECT count(*) FROM events WHERE grid_code IS NULL OR community_code IS NULL OR town_code IS NULL "
        "OR station_code IS NULL",
    )
    assert unplaced == 0
    ((wrong,),) = rows(
        demo_db,
        "SELECT count(*) FROM events e JOIN grids g ON g.code = e.grid_code WHERE NOT ST_Covers(g.geom, e.geom)",
    )
    assert wrong == 0


def test_every_event_has_a_department_by_a_rule(demo_db: Engine):
    ((undecided, reasons, departments),) = rows(
        demo_db,
        "SELECT count(*) FILTER (WHERE department_code IS NULL OR rule_id IS NULL), "
        "count(*) FILTER (WHERE route_reason LIKE 'rule %'), count(DISTINCT department_code) FROM events",
    )
    assert undecided == 0 and reasons == 50_000 and departments >= 8
    # Checked independently in PostGIS: public-order events within 200 m (metric) of a school go to the
    # police by rule 4 (校园警务), and no other public-order event does.
    ((near_wrong, far_wrong, near),) = rows(
        demo_db,
        "WITH po AS (SELECT e.id, e.rule_id, EXISTS (SELECT 1 FROM key_places k WHERE k.type = 'school' "
        "  AND ST_DWithin(ST_Transform(k.geom, 4549), ST_Transform(e.geom, 4549), 200)) AS near_school "
        "  FROM events e WHERE e.category_code LIKE 'public\\_order.%') "
        "SELECT count(*) FILTER (WHERE near_school AND rule_id <> 4), "
        "count(*) FILTER (WHERE NOT near_school AND rule_id = 4), count(*) FILTER (WHERE near_school) FROM po",
    )
    assert near > 100 and near_wrong == 0 and far_wrong == 0


def test_second_demo_run_is_skipped(demo_db: Engine):
    assert demo_loaded(demo_db)


def test_demo_users_can_sign_in_with_their_roles(demo_db: Engine):
    from geoservice.auth.users import authenticate
    from geoservice.city.demo import demo_users
    from geoservice.infra.database import transaction

    with transaction(demo_db) as session:
        for user in demo_users():
            principal = authenticate(session, user.username, user.password)
            assert principal is not None and principal.role == user.role
            assert principal.region_code == user.region_code
    ((communities,),) = rows(
        demo_db, "SELECT count(*) FROM regions WHERE code = '320682001001' AND level = 'community'"
    )
    assert communities == 1  # the grid worker's scope exists
