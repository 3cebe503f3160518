"""The bottom of the layout: the schema's record (GeoAlchemy2 models, shared enums) and geography (``layers.crs``)."""

from layers import forces as forces  # registers its tables on the shared metadata, for alembic and tests
