"""Mapbox Vector Tiles built in PostGIS (ST_AsMVT), TileJSON, and a tile cache keyed by data version.

Imports nothing of ours but ``layers``: who may see what (the caller's scope) and how events are
coloured arrive as SQL fragments from ``geoservice``, so the rules are defined once, there.
"""
