"""The layers of the system of record: GeoAlchemy2 models and the layer catalog."""
