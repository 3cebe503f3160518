"""The compression suite: bytes on the wire and time per request, identity against gzip, br and zstd.

On the demo city (1,500 digitised grids), through a real uvicorn server: the GeoJSON of 1,000
grids (``/collections/grids/items?limit=1000``), a grid tile at z9 (the whole city, the largest
tile) and at z12, a 500-event JSON page and the OpenAPI document. Each is asked with
``Accept-Encoding: identity``, ``gzip``, ``br`` and ``zstd``; the body is read as sent (not
decoded) for its size, and the time is the median of kept-alive requests from the client, so it
includes compressing on the server and nothing of decoding on the client. Tiles come from the
tile cache (asked once before), so the tile rows show the cost compression adds to the fast path.

``python -m bench.compression [--url URL]`` runs it alone (on an existing demo database, or building
the demo city in the bench cluster first); ``run`` has the signature of a suite in ``bench/__main__.py``.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
import urllib.parse

from rich.console import Console

from bench.cities import City, bench_cluster, build_cities
from bench.report import Table, print_table
from bench.tiles import _server, _tile_xy, _token

CODINGS = ("identity", "gzip", "br", "zstd")
ROUNDS = 30


def run(cities: list[City], args: argparse.Namespace | None, console: Console) -> tuple[list[Table], bool]:
    """Measure on the demo city (it has events and users)."""
    demo = next((c for c in cities if c.key == "demo"), None)
    if demo is None:
        console.log("compression: no demo city in this run, skipped")
        return [], True
    return measure(demo.url, console)


def measure(url: str, console: Console) -> tuple[list[Table], bool]:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) c FROM regions r "
            "JOIN boundary_versions v ON v.id = r.version_id AND v.status = 'published') s"
        ).fetchone()
    targets = {
        "GeoJSON, 1,000 grids": "/collections/grids/items?limit=1000",
        "grids tile z9": "/tiles/grids/9/{}/{}.mvt".format(*_tile_xy(lon, lat, 9)),
        "grids tile z12": "/tiles/grids/12/{}/{}.mvt".format(*_tile_xy(lon, lat, 12)),
        "events JSON, 500": "/v1/events?limit=500",
        "OpenAPI document": "/openapi.json",
    }
    table = Table("Compression: bytes as sent; median ms per kept-alive request (compressing on the server included)")
    with _server(url, cache_mb=256) as base:
        token = _token(base)
        connection = http.client.HTTPConnection(urllib.parse.urlsplit(base).netloc, timeout=120)
        for name, path in targets.items():
            console.log(f"compression: {name}")
            sizes, times = {}, {}
            for coding in CODINGS:
                headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": coding}
                sent = _get(connection, path, headers)[0]  # fills the tile cache, warms the route
                assert sent.getheader("Content-Encoding", "identity") == coding, (name, coding)
                sizes[coding] = len(sent.body)
                times[coding] = statistics.median(_get(connection, path, headers)[1] for _ in range(ROUNDS))
            for coding in CODINGS:
                ratio = "" if coding == "identity" else f"{sizes['identity'] / sizes[coding]:.1f}× smaller"
                table.add(name, coding, f"{sizes[coding]:,} B, {times[coding]:.2f} ms", ratio)
    return [table], True


class _Sent:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.body = response.read()  # http.client does not decode: the bytes as sent
        self.getheader = response.getheader


def _get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[_Sent, float]:
    started = time.perf_counter()
    connection.request("GET", path, headers=headers)
    sent = _Sent(connection.getresponse())
    return sent, (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    """Run on ``--url`` (a database holding the demo city), or build the demo city in the bench cluster."""
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="SQLAlchemy URL of a database with the demo city loaded")
    args = parser.parse_args(argv)
    console = Console(width=200)
    if args.url:
        tables, ok = measure(args.url, console)
    else:
        cluster = bench_cluster()
        cluster.up("bench")
        tables, ok = run(build_cities(cluster, ("demo",), step=console.log), args, console)
    for table in tables:
        print_table(console, table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
