"""The service's default settings, for tests that call the domain directly (the app builds its own)."""

from geoservice.boundaries.settings import BoundarySettings
from geoservice.settings import RoutingSettings

ROUTING = RoutingSettings()
BOUNDARIES = BoundarySettings()
PUBLISHING = {"routing": ROUTING, "boundaries": BOUNDARIES}
