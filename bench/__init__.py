"""Benchmarks: ``scripts/bench`` runs every suite and prints a table per city (see bench/RESULTS.md).

Suites: ``router`` (bulk point-in-grid, single point in process, HTTP locate under load), each
against what a user would do without the router (geopandas, PostGIS). Cities: two synthetic
variants over the real county boundary and the demo city (``bench.cities``).
"""
