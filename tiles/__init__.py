"""Mapbox Vector Tiles built in PostGIS (ST_AsMVT), keyed by data version."""
