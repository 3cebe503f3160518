import math

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from layers.crs import (
    InputCRS,
    UnknownCRSError,
    bd09_to_gcj02,
    bd09_to_wgs84,
    crs_from_file,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    geometries_from_wgs84,
    geometries_to_wgs84,
    metric_epsg_for,
    parse_crs,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = pyproj.Geod(ellps="WGS84")
CM = 0.01  # metres


def dist_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance in metres between two (arrays of) WGS84-ish positions."""
    shape = np.broadcast(np.asarray(lon1), np.asarray(lat1), np.asarray(lon2), np.asarray(lat2)).shape
    args = [np.broadcast_to(np.asarray(a, dtype=float), shape).ravel() for a in (lon1, lat1, lon2, lat2)]
    return np.asarray(GEOD.inv(*args)[2]).reshape(shape)


def published_tolerance_m(lon: float, lat: float, decimals: int | None) -> float:
    """One unit in the last published digit on both axes, in metres (at least 1 mm)."""
    if decimals is None:  # published at full float precision
        return 0.001
    unit = 10.0**-decimals
    return max(0.001, float(dist_m(lon, lat, lon + unit, lat + unit)))


# ---------------------------------------------------------------------------------------------
# Published reference pairs, (lon, lat) order throughout. "decimals" is the precision the source
# publishes the *output* to (None = full float64 repr).
#
# [evil]  googollee/eviltransform, go/transform_test.go and python/test.py, `tests`/`TESTS`
#         (wgsLat, wgsLng, gcjLat, gcjLng), Krasovsky-ellipsoid Go implementation.
# [ct]    wandergis/coordtransform README.md, "//result" block of the usage example:
#         wgs84togcj02(116.404, 39.915) and gcj02tobd09(116.404, 39.915).
# [gcoord-8]  hujiulong/gcoord test/unit/transform.spec.ts ("transform - geojson": WGS84->GCJ02 of
#         [123, 45]) and test/unit/crs/GCJ02.spec.ts ("GCJ02 to BD09" of [123, 45]); 8 decimals,
#         truncated rather than rounded, hence a full last-digit unit of tolerance.
# [gcoord-cities]  hujiulong/gcoord test/fixtures/china-cities.json, "GCJ02" and "BD09" of the
#         named cities, 7 decimals. (The fixture's "WGS84" column is NOT used: it sits a
#         consistent ~0.6 m from the published GCJ-02 algorithm, and gcoord itself only checks it
#         to 4 decimals, so it was evidently not produced by the algorithm.)
# ---------------------------------------------------------------------------------------------
WGS_GCJ_PAIRS = [
    ("evil shanghai", (121.5272106, 31.1774276), (121.531541859215, 31.17530398364597), None),
    ("evil shenzhen", (113.912316, 22.543847), (113.9171764808363, 22.540796131694766), None),
    ("evil beijing", (116.377817, 39.911954), (116.38404722455657, 39.91334545536069), None),
    ("ct readme", (116.404, 39.915), (116.41024449916938, 39.91640428150164), None),
    ("gcoord-8", (123.0, 45.0), (123.00607541, 45.00197815), 8),
]
GCJ_BD_PAIRS = [
    ("ct readme", (116.404, 39.915), (116.41036949371029, 39.92133699351021), None),
    ("gcoord-8", (123.0, 45.0), (123.00636499, 45.00636899), 8),
    ("gcoord-cities zhumadian", (114.022306, 33.0115324), (114.0287781, 33.0176697), 7),
    ("gcoord-cities naqu", (92.0512438, 31.4762063), (92.0576832, 31.4824421), 7),
    ("gcoord-cities shenyang", (123.4314787, 41.8057023), (123.438095, 41.8114013), 7),
    ("gcoord-cities qinzhou", (108.6541485, 21.9799392), (108.6607283, 21.9856319), 7),
    ("gcoord-cities jiuquan", (98.4943595, 39.7328234), (98.5008441, 39.7388949), 7),
    ("gcoord-cities quanzhou", (118.6756787, 24.8741363), (118.6821251, 24.8804872), 7),
]


def _ids(pairs):
    return [p[0] for p in pairs]


@pytest.mark.parametrize(("source", "wgs", "gcj", "decimals"), WGS_GCJ_PAIRS, ids=_ids(WGS_GCJ_PAIRS))
def test_wgs84_to_gcj02_matches_published(source, wgs, gcj, decimals):
    lon, lat = wgs84_to_gcj02(*wgs)
    assert dist_m(lon, lat, *gcj) <= published_tolerance_m(*gcj, decimals)


@pytest.mark.parametrize(("source", "wgs", "gcj", "decimals"), WGS_GCJ_PAIRS, ids=_ids(WGS_GCJ_PAIRS))
def test_gcj02_to_wgs84_recovers_published_wgs84_within_1cm(source, wgs, gcj, decimals):
    lon, lat = gcj02_to_wgs84(*gcj)
    assert dist_m(lon, lat, *wgs) < CM


@pytest.mark.parametrize(("source", "gcj", "bd", "decimals"), GCJ_BD_PAIRS, ids=_ids(GCJ_BD_PAIRS))
def test_gcj02_to_bd09_matches_published(source, gcj, bd, decimals):
    lon, lat = gcj02_to_bd09(*gcj)
    assert dist_m(lon, lat, *bd) <= published_tolerance_m(*bd, decimals)


@pytest.mark.parametrize(("source", "gcj", "bd", "decimals"), GCJ_BD_PAIRS, ids=_ids(GCJ_BD_PAIRS))
def test_bd09_to_gcj02_recovers_published_gcj02(source, gcj, bd, decimals):
    lon, lat = bd09_to_gcj02(*bd)
    # 1 cm, or the rounding of the published pair when that is coarser (7 decimals ~ 1.4 cm).
    assert dist_m(lon, lat, *gcj) < max(CM, published_tolerance_m(*gcj, decimals))


def test_wgs84_to_bd09_composes_the_published_steps():
    # [evil beijing] WGS84 -> GCJ-02 is published; BD-09 must be exactly GCJ-02 -> BD-09 of it.
    wgs, gcj = WGS_GCJ_PAIRS[2][1], WGS_GCJ_PAIRS[2][2]
    expected = gcj02_to_bd09(*gcj)
    assert dist_m(*wgs84_to_bd09(*wgs), *expected) < 0.001
    assert dist_m(*bd09_to_wgs84(*expected), *wgs) < CM


# --- round trips over the whole of China ------------------------------------------------------


@pytest.fixture(scope="module")
def china_points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240611)
    return rng.uniform(73.0, 135.0, 10_000), rng.uniform(18.0, 53.0, 10_000)


def test_gcj02_round_trip_under_1cm(china_points):
    lon, lat = china_points
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert dist_m(lon, lat, *back).max() < CM


def test_bd09_round_trip_under_1cm(china_points):
    lon, lat = china_points
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert dist_m(lon, lat, *back).max() < CM


def test_bd09_to_gcj02_round_trip_under_1cm(china_points):
    lon, lat = china_points
    back = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert dist_m(lon, lat, *back).max() < CM


def test_one_step_inverse_is_metres_off_which_is_why_we_iterate(china_points):
    lon, lat = china_points
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    # The inverse most libraries ship: subtract the offset evaluated at the GCJ-02 point.
    o_lon, o_lat = wgs84_to_gcj02(g_lon, g_lat)
    one_step = dist_m(lon, lat, 2 * g_lon - o_lon, 2 * g_lat - o_lat)
    iterated = dist_m(lon, lat, *gcj02_to_wgs84(g_lon, g_lat))
    assert one_step.max() > 1.0
    assert iterated.max() < CM


def test_one_step_bd09_inverse_is_decimetres_off(china_points):
    lon, lat = china_points
    b_lon, b_lat = gcj02_to_bd09(lon, lat)
    # The published one-step BD-09 -> GCJ-02 formula (coordtransform's bd09togcj02).
    x, y = b_lon - 0.0065, b_lat - 0.006
    x_pi = math.pi * 3000.0 / 180.0
    z = np.hypot(x, y) - 0.00002 * np.sin(y * x_pi)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * x_pi)
    one_step = dist_m(lon, lat, z * np.cos(theta), z * np.sin(theta))
    assert one_step.max() > 0.1
    assert dist_m(lon, lat, *bd09_to_gcj02(b_lon, b_lat)).max() < CM


# --- shapes, scalars, outside China -----------------------------------------------------------

OUTSIDE = [
    (2.3522, 48.8566),  # Paris
    (-74.006, 40.7128),  # New York
    (139.6917, 35.6895),  # Tokyo: east of 137.8347
    (100.0, 56.0),  # north of 55.8271
    (100.0, 0.5),  # south of 0.8293
    (71.9, 39.0),  # west of 72.004
]


@pytest.mark.parametrize("point", OUTSIDE)
def test_gcj02_is_identity_outside_china(point):
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84):
        lon, lat = fn(*point)
        assert (float(lon), float(lat)) == point


def test_mixed_inside_and_outside_arrays():
    lon = np.array([2.3522, 116.404, 139.6917])
    lat = np.array([48.8566, 39.915, 35.6895])
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    assert g_lon[[0, 2]].tolist() == lon[[0, 2]].tolist()
    assert g_lat[[0, 2]].tolist() == lat[[0, 2]].tolist()
    assert dist_m(g_lon[1], g_lat[1], *WGS_GCJ_PAIRS[3][2]) < 0.001
    w_lon, w_lat = gcj02_to_wgs84(g_lon, g_lat)
    assert dist_m(lon, lat, w_lon, w_lat).max() < CM


def test_shapes_scalars_nan_and_no_mutation():
    lon = np.array([[116.404, np.nan], [121.47, 113.26]])
    lat = np.array([[39.915, 30.0], [31.23, 23.13]])
    saved = lon.copy(), lat.copy()
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84, wgs84_to_bd09, bd09_to_wgs84):
        x, y = fn(lon, lat)
        assert x.shape == y.shape == (2, 2) and x.dtype == y.dtype == np.float64
        assert np.isnan(x[0, 1]) and np.isfinite(x[1]).all()
        np.testing.assert_array_equal(lon, saved[0])
        np.testing.assert_array_equal(lat, saved[1])
        sx, sy = fn(116.404, 39.915)
        assert sx.shape == sy.shape == ()
    empty = gcj02_to_wgs84([], [])
    assert empty[0].shape == (0,)


# --- parse_crs / crs_from_file ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "epsg", "wgs_like"),
    [
        (None, "wgs84", 4326, True),
        ("", "wgs84", 4326, True),
        ("  ", "wgs84", 4326, True),
        ("wgs84", "wgs84", 4326, True),
        ("WGS84", "wgs84", 4326, True),
        ("wgs-84", "wgs84", 4326, True),
        ("WGS-84", "wgs84", 4326, True),
        ("EPSG:4326", "wgs84", 4326, True),
        ("epsg:4326", "wgs84", 4326, True),
        (" EPSG : 4326 ", "wgs84", 4326, True),
        ("cgcs2000", "cgcs2000", 4490, True),
        ("CGCS2000", "cgcs2000", 4490, True),
        ("EPSG:4490", "cgcs2000", 4490, True),
        ("gcj02", "gcj02", None, False),
        ("GCJ02", "gcj02", None, False),
        ("gcj-02", "gcj02", None, False),
        ("GCJ-02", "gcj02", None, False),
        ("bd09", "bd09", None, False),
        ("BD09", "bd09", None, False),
        ("bd-09", "bd09", None, False),
        ("BD-09", "bd09", None, False),
        ("EPSG:4549", "EPSG:4549", 4549, False),
        ("epsg:3857", "EPSG:3857", 3857, False),
    ],
)
def test_parse_crs_accepted_spellings(text, name, epsg, wgs_like):
    crs = parse_crs(text)
    assert crs == InputCRS(name, epsg)
    assert crs.is_geographic_wgs84_like is wgs_like


@pytest.mark.parametrize("text", ["foo", "EPSG:999999", "EPSG:abc", "EPSG:", "wgs 1984", "EPSG:5773"])
def test_parse_crs_rejects_unknown(text):
    with pytest.raises(UnknownCRSError) as info:
        parse_crs(text)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for accepted in ("wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:n"):
        assert accepted in message


def test_crs_from_file():
    assert crs_from_file(None) is None
    assert crs_from_file(pyproj.CRS.from_epsg(4326)) == InputCRS("wgs84", 4326)
    assert crs_from_file(pyproj.CRS("OGC:CRS84")) == InputCRS("wgs84", 4326)
    assert crs_from_file(pyproj.CRS.from_epsg(4490)) == InputCRS("cgcs2000", 4490)
    assert crs_from_file(pyproj.CRS.from_epsg(4549)) == InputCRS("EPSG:4549", 4549)
    assert crs_from_file("EPSG:3857") == InputCRS("EPSG:3857", 3857)
    with pytest.raises(UnknownCRSError):
        crs_from_file(pyproj.CRS("+proj=tmerc +lon_0=121.3 +ellps=GRS80 +units=m"))


# --- coordinate and geometry conversion through InputCRS --------------------------------------


def test_epsg_4549_round_trip_within_1mm():
    crs = parse_crs("EPSG:4549")
    x = np.array([500_000.0, 512_345.678, 430_000.0])
    y = np.array([3_500_000.0, 3_456_789.012, 4_100_000.0])
    lon, lat = to_wgs84(x, y, crs)
    assert np.all(np.abs(lon - 120.0) < 1.5)  # the zone around CM 120E
    x2, y2 = from_wgs84(lon, lat, crs)
    assert np.hypot(x2 - x, y2 - y).max() < 0.001  # projected coordinates are already metres


def test_epsg_4490_is_identity():
    crs = parse_crs("EPSG:4490")
    lon, lat = np.array([120.57, 117.2]), np.array([31.3, 31.8])
    for fn in (to_wgs84, from_wgs84):
        out = fn(lon, lat, crs)
        np.testing.assert_array_equal(out[0], lon)
        np.testing.assert_array_equal(out[1], lat)


def test_china_crs_dispatch():
    gcj = WGS_GCJ_PAIRS[3][2]
    assert dist_m(*to_wgs84(*gcj, parse_crs("gcj02")), *WGS_GCJ_PAIRS[3][1]) < CM
    assert dist_m(*from_wgs84(*WGS_GCJ_PAIRS[3][1], parse_crs("GCJ-02")), *gcj) < 0.001
    bd = wgs84_to_bd09(116.404, 39.915)
    assert dist_m(*from_wgs84(116.404, 39.915, parse_crs("bd09")), *bd) < 0.001
    assert dist_m(*to_wgs84(*bd, parse_crs("bd-09")), 116.404, 39.915) < CM
    with pytest.raises(UnknownCRSError):
        to_wgs84(1.0, 2.0, InputCRS("made-up", None))


def _square(lon, lat, d):
    return [(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat + d), (lon, lat)]


@pytest.mark.parametrize("crs_name", ["gcj02", "bd09", "EPSG:4549"])
def test_geometries_keep_type_and_vertex_count(crs_name):
    crs = parse_crs(crs_name)
    holed = Polygon(_square(120.5, 31.2, 0.1), [_square(120.52, 31.22, 0.02)])
    multi = MultiPolygon([Polygon(_square(120.6, 31.3, 0.05)), Polygon(_square(120.7, 31.3, 0.05))])
    wgs = np.array([holed, multi, None], dtype=object)
    native = geometries_from_wgs84(wgs, crs)
    back = geometries_to_wgs84(list(native), crs)
    assert isinstance(back, np.ndarray) and back[2] is None
    for before, mid, after in zip(wgs[:2], native[:2], back[:2], strict=True):
        assert type(mid) is type(before) and type(after) is type(before)
        assert shapely.get_num_coordinates(mid) == shapely.get_num_coordinates(before)
        assert shapely.get_num_coordinates(after) == shapely.get_num_coordinates(before)
        first_parts = shapely.get_geometry([before, after], 0)
        holes_before, holes_after = shapely.get_num_interior_rings(first_parts)
        assert holes_after == holes_before
        a, b = shapely.get_coordinates(before), shapely.get_coordinates(after)
        assert dist_m(a[:, 0], a[:, 1], b[:, 0], b[:, 1]).max() < CM
    # The geometry path must agree with the coordinate path vertex by vertex.
    coords = shapely.get_coordinates(native[0])
    expected = np.column_stack(to_wgs84(coords[:, 0], coords[:, 1], crs))
    np.testing.assert_allclose(shapely.get_coordinates(back[0]), expected, rtol=0, atol=1e-12)


def test_geometries_keep_z():
    line = LineString([(116.40, 39.91, 50.0), (116.41, 39.92, 60.0)])
    (out,) = geometries_to_wgs84([line], parse_crs("gcj02"))
    assert out.has_z
    np.testing.assert_array_equal(shapely.get_coordinates(out, include_z=True)[:, 2], [50.0, 60.0])
    (flat,) = geometries_to_wgs84([Point(116.40, 39.91)], parse_crs("gcj02"))
    assert not flat.has_z


def test_geometries_wgs84_like_untouched():
    polygon = Polygon(_square(120.5, 31.2, 0.1))
    (out,) = geometries_to_wgs84([polygon], parse_crs("cgcs2000"))
    assert out.equals_exact(polygon, tolerance=0)


# --- metric zones -----------------------------------------------------------------------------


def test_metric_epsg_for():
    assert metric_epsg_for(120.57) == 4549
    assert metric_epsg_for(117.2) == 4548
    assert "CM 120E" in pyproj.CRS.from_epsg(metric_epsg_for(120.57)).name
    assert "CM 117E" in pyproj.CRS.from_epsg(metric_epsg_for(117.2)).name
    # Xinjiang's and Heilongjiang's edges are still China, in the outermost zones.
    assert metric_epsg_for(73.6) == 4534
    assert metric_epsg_for(135.05) == 4554


@pytest.mark.parametrize("central_meridian", range(75, 136, 3))
def test_metric_epsg_names_match_central_meridian(central_meridian):
    for lon in (central_meridian - 1.49, central_meridian, central_meridian + 1.49):
        crs = pyproj.CRS.from_epsg(metric_epsg_for(lon))
        assert f"CM {central_meridian}E" in crs.name
        assert crs.is_projected


@pytest.mark.parametrize("lon", [0.0, 10.0, 73.4, 136.5, 140.0, -120.0, 300.0, math.nan, math.inf])
def test_metric_epsg_for_rejects_longitudes_outside_the_zones(lon):
    with pytest.raises(ValueError):
        metric_epsg_for(lon)
