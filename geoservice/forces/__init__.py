"""Governance forces (治理力量): where grid workers and patrols are, and which are nearest an event.

Grid workers are users of role ``grid_worker``; patrols are handlers of the police department (the
design has no patrol role, and a patrol car is the police acting in the field). Positions come from
the mobile client, throttled, with a short history; a position older than the staleness limit
counts as unknown: a dispatcher is never sent to where someone was an hour ago.
"""
