"""The layers of the system of record: GeoAlchemy2 models and the layer catalog."""

from layers import forces as forces  # registers its tables on the shared metadata, for alembic and tests
