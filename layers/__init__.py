"""The bottom of the layout: the schema's record (GeoAlchemy2 models, shared enums) and geography (``layers.crs``).

Nothing is imported here: ``layers.crs`` alone (what ``geoservice route`` needs) must not pay for
GeoAlchemy2 and the models (~0.5 s and ~50 MB, measured). Whoever needs the whole metadata — Alembic
(``geoservice/migrations/env.py``), the schema tests — imports ``layers.forces`` as well as ``layers.models``.
"""
