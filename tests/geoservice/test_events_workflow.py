"""Every (state, action, role) of the closed loop, against a hand-written table and on a real database."""

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geoservice.api.problems import ProblemError, problem_error
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import current_version_id
from geoservice.errors import DomainError
from geoservice.events.report import report_event
from geoservice.events.transitions import apply_transition
from geoservice.events.workflow import ACTIONS, STEPS, actions_for, next_level
from geoservice.infra.database import session_factory, transaction
from geoservice.routing.loader import load_router
from layers.models import EVENT_STATUSES, Role
from tests.geoservice.events_city import COMMUNITY_A, GRIDS, TOWN_A, centre, load_events_city
from tests.settings import ROUTING

# The design's closed loop, written out by hand: action → (from states, to state, roles besides admin).
EXPECTED = {
    "accept": ({"reported"}, "accepted", {"dispatcher", "grid_worker"}),
    "reject": ({"reported"}, "rejected", {"dispatcher"}),
    "dispatch": ({"accepted", "returned"}, "dispatched", {"dispatcher"}),
    "return": ({"dispatched"}, "returned", {"handler", "dispatcher"}),
    "start": ({"dispatched", "reopened"}, "handling", {"handler", "grid_worker"}),
    "feedback": ({"handling"}, "handled", {"handler", "grid_worker"}),
    "verify": ({"handled"}, "verified", {"dispatcher"}),
    "reopen": ({"handled", "verified"}, "reopened", {"dispatcher"}),
    "archive": ({"verified"}, "archived", {"dispatcher"}),
    "evaluate": ({"archived"}, "evaluated", {"dispatcher", "public"}),
    "escalate": (
        {"reported", "accepted", "dispatched", "returned", "handling", "handled", "reopened"},
        None,
        {"dispatcher", "grid_worker", "handler"},
    ),
    "return_down": ({"reported", "accepted", "returned"}, None, {"dispatcher"}),
    "merge": (
        {"reported", "accepted", "dispatched", "returned", "handling", "handled", "reopened"},
        "merged",
        {"dispatcher"},
    ),
}
ACTORS = {
    Role.admin: Principal("boss", Role.admin),
    Role.planner: Principal("planner", Role.planner),
    Role.dispatcher: Principal("disp", Role.dispatcher, region_code=TOWN_A),
    Role.handler: Principal("handler", Role.handler, department_code="urban_management"),
    Role.grid_worker: Principal("gw", Role.grid_worker, region_code=COMMUNITY_A),
    Role.supervisor: Principal("sup", Role.supervisor),
    Role.public: Principal("citizen", Role.public),
}
ARGS = {"dispatch": {"department_code": "urban_management"}, "evaluate": {"satisfaction": 4}}


def test_the_table_is_the_designs_loop():
    actual = {a: (set(s.sources), s.target, {str(r) for r in s.roles} - {"admin"}) for a, s in STEPS.items()}
    assert actual == EXPECTED
    assert all(Role.admin in s.roles for s in STEPS.values())
    assert set(ACTIONS) == set(EXPECTED)
    # every state is reachable from "reported", and only rejected/evaluated/merged are dead ends
    reachable, frontier = {"reported"}, ["reported"]
    while frontier:
        state = frontier.pop()
        for s in STEPS.values():
            if state in s.sources and s.target and s.target not in reachable:
                reachable.add(s.target)
                frontier.append(s.target)
    assert reachable == set(EVENT_STATUSES)
    assert {st for st in EVENT_STATUSES if not actions_for(st, Role.admin)} == {"rejected", "evaluated", "merged"}
    assert [next_level(x) for x in ("grid", "community", "town", "city")] == ["community", "town", "city", None]


@pytest.fixture(scope="module")
def loop_db(cluster) -> Iterator[Engine]:
    """One database for the whole matrix: each case runs in a transaction that is rolled back."""
    from geoservice.infra.database import make_engine
    from tests.conftest import clone_template, drop_database

    engine = make_engine(clone_template(cluster, "t_events_matrix"))
    load_events_city(engine)
    with transaction(engine) as session:
        router = load_router(session, current_version_id(session), ROUTING)
        event, _ = report_event(session, router, lon=centre(0)[0], lat=centre(0)[1], category_code="city_management",
                                reporter_name="李四", actor=ACTORS[Role.public])  # fmt: skip
        session.execute(text("INSERT INTO users (username, password_hash, role, department_code) "
                             "VALUES ('handler', 'x', 'handler', 'urban_management')"))  # fmt: skip
    engine.info = {"event_id": event["id"]}  # type: ignore[attr-defined]
    yield engine
    engine.dispose()
    drop_database(cluster, "t_events_matrix")


CASES = list(itertools.product(EVENT_STATUSES, ACTIONS, list(Role)))


# Who holds the event in each attempt: the actor's own unit or department, so that the matrix tests
# the workflow alone (holding is tested in test_owners.py); return_down starts one level up.
HOLDERS = {Role.handler: ("department", "urban_management"), Role.dispatcher: ("unit", TOWN_A)}


def _attempt(session: Session, event_id: int, status: str, action: str, role: Role) -> dict | ProblemError:
    kind, code = HOLDERS.get(role, ("unit", GRIDS[0]))
    level = "town" if action == "return_down" else "grid"
    session.execute(
        text("UPDATE events SET status = :s, owner_kind = :k, owner_code = :c, escalation_level = :l WHERE id = :id"),
        {"s": status, "k": kind, "c": code, "l": level, "id": event_id},
    )
    try:
        return apply_transition(session, event_id, action, ACTORS[role], "a note", 1, **ARGS.get(action, {}))
    except DomainError as exc:
        answered = problem_error(exc)  # what the API would answer: the one table decides
        return answered


def test_every_state_action_role(loop_db: Engine):
    event_id = loop_db.info["event_id"]  # type: ignore[attr-defined]
    outcomes = {}
    with session_factory(loop_db)() as session:
        for status, action, role in CASES:
            session.begin()
            try:
                outcomes[status, action, role] = _attempt(session, event_id, status, action, role)
            finally:
                session.rollback()
    checked = 0
    for (status, action, role), outcome in outcomes.items():
        sources, target, roles = EXPECTED[action]
        may = role == Role.admin or str(role) in roles
        if role in (Role.planner, Role.supervisor):
            assert isinstance(outcome, ProblemError) and outcome.status in (403, 404), (status, action, role)
        elif not may:
            assert isinstance(outcome, ProblemError) and outcome.status == 403, (status, action, role, outcome)
            assert "may not" in outcome.detail
        elif status not in sources:
            assert isinstance(outcome, ProblemError) and outcome.status == 409, (status, action, role, outcome)
            at_grid = action != "return_down"  # the event is at grid level: nothing below to return it to
            assert outcome.extra["allowed_actions"] == [
                a for a, (src, _, rs) in EXPECTED.items()
                if status in src and (role == Role.admin or str(role) in rs) and not (at_grid and a == "return_down")
            ]  # fmt: skip
        elif action == "merge":  # allowed here, but a merge names its master: its own route (test_duplicates)
            assert isinstance(outcome, ProblemError) and outcome.status == 422 and "/merge" in outcome.detail
        else:
            assert not isinstance(outcome, ProblemError), (status, action, role, outcome.detail)
            taken_back = action == "escalate" and status in {"dispatched", "handling", "reopened"}
            assert outcome["status"] == ("returned" if taken_back else target or status), (status, action, role)
            assert outcome["row_version"] == 2
            if action == "escalate":
                assert outcome["escalation_level"] == "community"
            if action == "return_down":
                assert outcome["escalation_level"] == "community" and outcome["owner_code"] == COMMUNITY_A
        checked += 1
    assert checked == len(EVENT_STATUSES) * len(ACTIONS) * len(Role) == 1092
    with loop_db.connect() as conn:  # every attempt was rolled back
        assert conn.execute(text("SELECT count(*) FROM event_log")).scalar_one() == 1
