"""The event closed loop: report, workflow, deadlines and warnings, queries in scope, the deadline sweep."""
