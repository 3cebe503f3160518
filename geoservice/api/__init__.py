"""HTTP routers, one module per resource; ``geoservice.app`` assembles them."""
