"""Statistics of the closed loop: counts, performance, the monthly governance ranking and hotspots.

Every figure is computed in PostGIS from the ``events`` table (one aggregate query per table) under
the caller's scope, so a scoped user's statistics never count an event they could not list; only
the governance index (a small weighted sum) and Getis-Ord Gi* (PySAL ``esda``) run in Python.
"""
