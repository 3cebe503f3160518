"""Loading a city's data into the service (today the demo city; its reference data and accounts with it)."""
