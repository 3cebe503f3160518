"""Schemathesis against the app's own OpenAPI document: no input the schema allows may cause a 5xx.

Every operation gets a bounded number of generated requests (valid and invalid by the schema), sent
through the real ASGI app on a small city with events, each twice: as an admin (the role that reaches
every operation) and as the anonymous public (who meet the sign-in and scope checks first). Checks:
never a server error, and every answer whose status the document declares matches the declared
schema and content type. Strings include NUL and other control characters, huge numbers and bare
numbers where times go (issue 15): each must be a 4xx.

Then the document is held to what the code accepts (issue 20), as an admin, with schemathesis's
two generation modes. Positive data (valid by the document) must not be refused at the field
level: a 422 naming a field, an unknown parameter, or Open311's 400 for either, means the
document promised something the code does not take. Refusals that depend on the data or on
several fields together (an unknown category, a point outside every grid, ``from`` after ``to``)
are not the document's to express and are allowed. Negative data (invalid by the document) must
be refused (schemathesis's ``negative_data_rejection``). Operations without any input have no
negative data and are left out of that half.
"""

import re
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from schemathesis.specs.openapi.checks import negative_data_rejection
from sqlalchemy import Engine

from geoservice.app import create_app
from geoservice.settings import OperationsSettings, RoutingSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, EVENTS, centre, load_events_city
from tests.geoservice.signin import sign_in

EXAMPLES = 25
CHECKS = (not_a_server_error, response_schema_conformance, content_type_conformance)


@pytest.fixture
def fuzzed(empty_db: Engine) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    load_events_city(empty_db)
    app = create_app(
        engine=empty_db,
        auth_settings=AUTH,
        routing=RoutingSettings(version_check_s=0.5),
        operations=OperationsSettings(public_rate="100000/minute"),
    )
    app.state.event_settings = EVENTS
    with TestClient(app) as client:  # runs the lifespan: engine, routers
        admin = sign_in(client, empty_db, Role.admin)
        lon, lat = centre(0)
        report = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "fuzz seed"}
        assert client.post("/v1/events", json=report, headers=admin).status_code == 201
        yield app, admin


def test_no_generated_request_causes_a_server_error(
    fuzzed: tuple[FastAPI, dict[str, str]], caplog: pytest.LogCaptureFixture
):
    app, admin = fuzzed
    # Each generated request is sent as both callers: generating it is most of this test's time.
    callers = {"admin": admin, "anonymous": {}}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)  # fmt: skip
        def check(case) -> None:
            for caller, headers in callers.items():
                response = case.call(headers=headers)
                try:
                    case.validate_response(response, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as exc:
                    raise AssertionError(f"as {caller}: {exc}") from exc

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's first failure, reported together
            failures[operation.label] = str(exc)[:2000]
    published = sum(len(ops) for ops in schema.raw_schema["paths"].values())
    assert operations == published  # every operation was fuzzed
    assert failures == {}
    # The database's refusal of a value is answered as a 422 but means a check is missing upstream.
    unchecked = {r.getMessage() for r in caplog.records if "reached the database unchecked" in r.getMessage()}
    assert unchecked == set()


CONFORMANCE_EXAMPLES = 15
FIELD = re.compile(r"^(query|path|body|header|form)\.[^:]+:|is not a parameter|are not parameters")


def field_level_refusal(response) -> str | None:  # noqa: ANN001
    """Why the answer refuses a field the document described (None: accepted, or refused for another reason)."""
    if response.status_code not in (400, 422):
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.startswith("text/xml"):  # Open311's <errors>
        description = ElementTree.fromstring(response.content)[0].findtext("description") or ""
        return description if FIELD.search(description) else None
    body = response.json()
    if isinstance(body, list):  # Open311's JSON errors
        return body[0]["description"] if FIELD.search(body[0]["description"]) else None
    if body.get("title") == "Unknown parameter":
        return body["detail"]
    fields = [e for e in body.get("errors") or [] if isinstance(e, dict) and "field" in e]
    # A model's own check of several fields together is reported on the body as a whole.
    return body["detail"] if any(e["field"] != "body" for e in fields) else None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_the_document_describes_what_the_code_accepts(fuzzed: tuple[FastAPI, dict[str, str]], mode: GenerationMode):
    app, admin = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    without_input = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=CONFORMANCE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None, phases=[Phase.explicit, Phase.generate])  # fmt: skip
        def check(case) -> None:
            response = case.call(headers=admin)
            if mode == GenerationMode.POSITIVE:
                case.validate_response(response, checks=(not_a_server_error,))
                refused = field_level_refusal(response)
                assert refused is None, f"valid by the document, refused: {case.method} {case.formatted_path} " \
                    f"query={case.query} body={case.body!r:.300}: {refused}"
            else:
                case.validate_response(response, checks=(not_a_server_error, negative_data_rejection))

        try:
            check()
        except Unsatisfiable:
            without_input += 1  # nothing to make invalid (no parameters, no body)
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = str(exc)[:2000]
    assert failures == {}
    assert without_input == 0 if mode == GenerationMode.POSITIVE else without_input < 30
