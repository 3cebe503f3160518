"""The closed loop (六步闭环) as data: which action leads from which states to which, and who may take it.

Kept as a table of pure data so that the API, the docs (docs/events.md) and the tests read the same
thing; the tests generate every allowed and every forbidden (state, action, role) from ``STEPS``.
Scope (which events a user may touch at all) is not decided here but in ``queries``: a user outside
an event's scope never reaches the workflow, the event simply does not exist for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoservice.errors import Conflict, Forbidden, InvalidInput
from layers.models import ESCALATION_LEVELS, EVENT_STATUSES, Role

OPEN_STATES = frozenset({"reported", "accepted", "dispatched", "returned", "handling", "handled", "reopened"})
ACTIONS_NEEDING_A_NOTE = frozenset({"reject", "return", "reopen", "escalate", "return_down"})
UNIT_HELD_STATES = frozenset({"reported", "accepted", "returned"})
# 小事不出格: a small-matter category's grid worker starts work straight from ``accepted``, no dispatch.
SMALL_MATTER_STARTS = frozenset({"accepted"})
SMALL_MATTER_STARTERS = frozenset({Role.admin, Role.grid_worker})


@dataclass(frozen=True)
class Step:
    """One action: the states it starts from, the state it leads to (None: unchanged), who may take it."""

    action: str
    sources: frozenset[str]
    target: str | None
    roles: frozenset[Role]
    stamp: str | None = None  # the ``*_at`` column recording when the target state was last entered


def _step(action: str, sources: set[str], target: str | None, *roles: Role) -> Step:
    stamp = f"{target}_at" if target in {"accepted", "dispatched", "handling", "handled", "verified", "archived",
                                          "evaluated"} else None  # fmt: skip
    return Step(action, frozenset(sources), target, frozenset({Role.admin, *roles}), stamp)


STEPS: dict[str, Step] = {
    s.action: s
    for s in (
        _step("accept", {"reported"}, "accepted", Role.dispatcher, Role.grid_worker),
        _step("reject", {"reported"}, "rejected", Role.dispatcher),
        _step("dispatch", {"accepted", "returned"}, "dispatched", Role.dispatcher),
        _step("return", {"dispatched"}, "returned", Role.handler, Role.dispatcher),
        _step("start", {"dispatched", "reopened"}, "handling", Role.handler, Role.grid_worker),
        _step("feedback", {"handling"}, "handled", Role.handler, Role.grid_worker),
        _step("verify", {"handled"}, "verified", Role.dispatcher),
        _step("reopen", {"handled", "verified"}, "reopened", Role.dispatcher),
        _step("archive", {"verified"}, "archived", Role.dispatcher),
        _step("evaluate", {"archived"}, "evaluated", Role.dispatcher, Role.public),
        _step("escalate", set(OPEN_STATES), None, Role.dispatcher, Role.grid_worker, Role.handler),
        _step("return_down", set(UNIT_HELD_STATES), None, Role.dispatcher),
        # A duplicate follows its master (``events.merge``, which names the master): terminal, from open states.
        _step("merge", set(OPEN_STATES), "merged", Role.dispatcher),
    )
}
ACTIONS = tuple(STEPS)
STATUSES = EVENT_STATUSES
LEVELS = ESCALATION_LEVELS

assert all(s.sources <= set(STATUSES) and (s.target is None or s.target in STATUSES) for s in STEPS.values())


def check_step(status: str, action: str, role: Role, level: str = "grid", small_matter: bool = False) -> Step:
    """The step if ``role`` may take ``action`` on an event in ``status``; else why not.

    A role that may never take the action hears so first (403); a role that may, but not from this
    state, gets 409 with the actions the current state allows it. A small matter (小事不出格) also
    lets its grid worker ``start`` from ``accepted``.
    """
    step = STEPS.get(action)
    if step is None:
        raise InvalidInput(
            f"{action!r} is not an action; actions are: {', '.join(ACTIONS)}",
            title="Unknown action",
            allowed_actions=list(ACTIONS),
        )
    if role not in step.roles:
        mine = actions_for(status, role, small_matter, level)
        who = ", ".join(sorted(step.roles))
        raise Forbidden(f"a {role} may not {action} an event; {action} is for: {who}", allowed_actions=mine)
    if status not in step.sources and not (small_matter and _small_matter_start(status, action, role)):
        mine = actions_for(status, role, small_matter, level)
        options = ", ".join(mine) if mine else "none"
        raise Conflict(
            f"an event that is {status} cannot be {action}ed (allowed from: {', '.join(sorted(step.sources))}); "
            f"what a {role} may do now: {options}",
            title="Not allowed in this state",
            allowed_actions=mine,
        )
    if action == "escalate" and next_level(level) is None:
        raise Conflict("the event is already at city level, the highest", title="Cannot escalate", allowed_actions=[])
    if action == "return_down" and previous_level(level) is None:
        raise Conflict("the event is already at grid level, the lowest", title="Cannot return down",
                       allowed_actions=[])  # fmt: skip
    if small_matter and _small_matter_start(status, action, role):
        return Step(step.action, step.sources | SMALL_MATTER_STARTS, step.target, step.roles, step.stamp)
    return step


def actions_for(status: str, role: Role, small_matter: bool = False, level: str | None = None) -> list[str]:
    """What ``role`` may do to an event in ``status``, in workflow order (small matters: start from accepted).

    Given the event's ``level``, the ladder's ends drop out: no escalate at city, no return_down at grid.
    """
    off = {"city": "escalate", "grid": "return_down"}.get(level or "")
    return [
        s.action
        for s in STEPS.values()
        if s.action != off
        and (status in s.sources and role in s.roles or small_matter and _small_matter_start(status, s.action, role))
    ]


def _small_matter_start(status: str, action: str, role: Role) -> bool:
    return action == "start" and status in SMALL_MATTER_STARTS and role in SMALL_MATTER_STARTERS


def next_level(level: str) -> str | None:
    """One level up: grid → community → town → city ("小事不出格、大事不出村、难事不出镇"); None above city."""
    k = LEVELS.index(level)
    return LEVELS[k + 1] if k + 1 < len(LEVELS) else None


def previous_level(level: str) -> str | None:
    """One level down (``return_down``): city → town → community → grid; None below grid."""
    k = LEVELS.index(level)
    return LEVELS[k - 1] if k > 0 else None
