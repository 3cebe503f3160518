"""A write is committed before its answer leaves: a client told 201 has its data stored.

FastAPI ends a ``yield`` dependency after the response by default; the session dependency must end
(and commit) before it, or a commit that fails reaches nobody. A deferred constraint trigger that
refuses every new boundary version at COMMIT makes the commit of ``POST /v1/boundary-versions`` (a
route on the session dependency) fail on purpose.
"""

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.app import create_app
from layers.models import Role
from tests.geoservice.events_city import AUTH, EVENTS, load_events_city
from tests.geoservice.signin import sign_in

REFUSE_AT_COMMIT = """
CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
CREATE CONSTRAINT TRIGGER refuse_versions AFTER INSERT ON boundary_versions DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();
"""


def test_a_failed_commit_is_never_answered_as_stored(empty_db: Engine):
    load_events_city(empty_db)
    app = create_app(engine=empty_db, auth_settings=AUTH, event_settings=EVENTS)
    # As a client sees it: a server error is an answer, not an exception in the test.
    with TestClient(app, raise_server_exceptions=False) as client:
        auth = sign_in(client, empty_db, Role.planner)
        with empty_db.begin() as conn:
            conn.execute(text(REFUSE_AT_COMMIT))
        response = client.post("/v1/boundary-versions", json={"name": "2026-12 调整"}, headers=auth)
    assert response.status_code >= 500, response.text  # never 201: nothing was stored
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM boundary_versions WHERE status = 'draft'")).scalar() == 0
