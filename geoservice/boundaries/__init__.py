"""Planners redraw grid boundaries: drafts and their edits, validation, impact, diffs.

A draft is a ``boundary_versions`` row with status ``draft``; its regions and grids are ordinary
rows of ``regions`` and ``grids`` with its ``version_id``. Publishing (``geoservice.boundaries.versions``)
refuses a draft that fails validation and re-routes open events in the same transaction.
"""
