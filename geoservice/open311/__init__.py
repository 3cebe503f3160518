"""Open311 GeoReport v2 for public clients: categories as services, events as service requests.

Every resource in XML (the spec's default) and JSON. Client applications identify themselves with
an ``api_key`` (the ``api_clients`` table, keys created by ``geoservice open311 add-client``);
reading is open to all. Categories may ask attributes (service definitions, ``attributes``).
"""
