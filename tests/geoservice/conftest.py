"""Fixtures shared by the geoservice tests of one concept each (the session-wide ones are in tests/conftest.py)."""

import pytest
from sqlalchemy import Engine

from etl.reference import load_reference_data
from geoservice.boundaries.versions import notify_layers_changed
from geoservice.infra.database import transaction
from tests.geoservice.test_locate_api import load_tiny_city


@pytest.fixture
def routing_city(use_database: str, empty_db: Engine) -> Engine:
    """The tiny city with the default reference data, for the CLI (``use_database``) and the router."""
    load_tiny_city(empty_db)
    with transaction(empty_db) as session:
        load_reference_data(session)
        notify_layers_changed(session)
    return empty_db
