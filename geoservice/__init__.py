"""geoservice: the spatial governance service (settings, database, router, workflow, API, CLI)."""
