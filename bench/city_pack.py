"""Check and load of a city pack the size of a real city: 6,000 dense grids, about 300 regions.

``python -m bench.city_pack [--grids 6000 --communities 285]`` builds the synthetic city of
``bench.cities`` (the dense variant: a vertex every ~25 m on every shared edge, as digitised grids
have), writes it as a city pack (GeoPackages, the shipped reference CSVs, city.toml), then times
``city check`` (read + every check, nothing written) and ``city load`` (check again, then one
transaction: regions, grids, posts, station areas, publish with its router build) into a fresh
database of the bench cluster. There is no peer to compare with: the figures are the seconds a
city waits.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from bench.cities import ADCODE, bench_cluster, synthetic_layers
from geoservice.boundaries.settings import BoundarySettings
from geoservice.city.load import check_directory, load_pack
from geoservice.city.pack import CityInfo, write_pack
from geoservice.infra.database import make_engine, migrate
from geoservice.settings import RoutingSettings

DBNAME = "bench_city_pack"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.city_pack", description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=6000)
    parser.add_argument("--communities", type=int, default=285, help="with 14 towns and the city: ~300 regions")
    args = parser.parse_args(argv)
    console = Console()
    started = time.perf_counter()
    console.print(f"building the synthetic city ({args.grids:,} grids, {args.communities} communities)")
    layers = synthetic_layers(n_grids=args.grids, n_communities=args.communities)["dense"]
    build_s = time.perf_counter() - started
    cluster = bench_cluster()
    cluster.up(DBNAME)
    boundaries = BoundarySettings()
    with tempfile.TemporaryDirectory(prefix="bench-pack-") as scratch:
        pack = Path(scratch) / "pack"
        frames = {name: getattr(layers, name) for name in ("regions", "grids", "posts", "station_areas")}
        started = time.perf_counter()
        write_pack(pack, CityInfo("示范市", ADCODE, version="bench-pack"), frames)
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        _, checked = check_directory(pack, boundaries)
        check_s = time.perf_counter() - started
        if not checked.ok:
            for fault in checked.faults[:20]:
                console.print(f"  {fault}", markup=False)
            console.print(f"[red]the bench pack has {len(checked.faults)} fault(s)[/]")
            return 1
        cluster.ensure_database(DBNAME, fresh=True)
        engine = make_engine(cluster.url(DBNAME))
        try:
            migrate(engine)
            started = time.perf_counter()
            report = load_pack(engine, pack, routing=RoutingSettings(), boundaries=boundaries,
                               passwords_file=Path(scratch) / "otp.tsv")  # fmt: skip
            load_s = time.perf_counter() - started
            with engine.connect() as conn:
                vertices = conn.execute(text("SELECT sum(ST_NPoints(geom)) FROM grids")).scalar_one()
        finally:
            engine.dispose()
    table = Table("step", "seconds", title=f"city pack: {report.counts['grids']:,} grids ({vertices:,} vertices), "
                  f"{report.counts['regions']:,} regions, {report.counts.get('posts', 0):,} posts")  # fmt: skip
    for step, seconds in (("build the synthetic city (not the pack's cost)", build_s),
                          ("write the pack (GeoPackages, CSVs)", write_s),
                          ("city check (read + every check, nothing written)", check_s),
                          ("city load (check + one transaction + publish)", load_s)):  # fmt: skip
        table.add_row(step, f"{seconds:.1f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
